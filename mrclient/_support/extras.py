"""How to install one of mrclient's optional extras, said in one place for every ImportError that needs one.

mrclient is not on PyPI yet: it is installed from a clone of its repository
or from a wheel built there (README, "Installation"), so the usual hint, the
package's name with the extra in brackets, would find nothing; this one says
what works.
"""

from __future__ import annotations

__all__ = ["install_hint"]


def install_hint(extra: str) -> str:
    """The pip commands that add ``extra`` to mrclient, for an ImportError's message."""
    return (
        f"install mrclient with its '{extra}' extra: pip install '.[{extra}]' in a clone of mrclient, "
        f"or pip install 'dist/mrclient-<version>-py3-none-any.whl[{extra}]' with a wheel built there"
    )
