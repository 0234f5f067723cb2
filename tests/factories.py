"""The factories moved to the shipped plugin (`pokervod_db.testing.factories`); this alias keeps
``from tests.factories import …`` working."""

from pokervod_db.testing.factories import *  # noqa: F403
from pokervod_db.testing.factories import __all__ as __all__
