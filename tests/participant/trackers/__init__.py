"""The crunch's base package, as a participant's submission ships it."""
