"""``lmtransfer compare``: the runner (each row in a child process, or a Ray task side by side; one shared
extraction; resumable), the worker that runs a row, the results read back and summarised, the verdict, and the
report with its plots."""

from __future__ import annotations

import sys
import types
from typing import Any


class _CallablePackage(types.ModuleType):
    """``lmtransfer.compare`` is both this package and the public function ``lmtransfer.compare(config)``.
    Once any ``lmtransfer.compare.*`` module is imported, the import system binds the package as the
    attribute ``compare`` of ``lmtransfer``, where the lazy export would give the function; calling the
    package calls the function, so ``from lmtransfer import compare; compare(config)`` works whatever
    was imported first."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        from lmtransfer.compare.runner import compare

        return compare(*args, **kwargs)


sys.modules[__name__].__class__ = _CallablePackage
