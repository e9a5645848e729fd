"""A predict service, in the shape of a real coordinator ported from the async reference client.

``service.py`` is the coordinator (what you deploy), ``participants.py`` the
participants' code (what runs on the model nodes), ``local_crunch.py`` an
embedded crunch where models join, leave, are redeployed and recover, and
``__main__.py`` runs the service on it until its steps are done or a SIGTERM /
SIGINT arrives. See README.rst beside these files.
"""
