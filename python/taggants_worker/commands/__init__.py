"""The worker's wire commands. Each module registers its commands with ``@command`` on import.

To add a module, add one line ``import taggants_worker.commands.<module>  # noqa: F401`` below
(keep them sorted); the server imports this package before it says hello.
"""

import taggants_worker.commands.compute  # noqa: F401
import taggants_worker.commands.core  # noqa: F401
import taggants_worker.commands.sign  # noqa: F401
