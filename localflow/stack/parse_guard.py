"""Every DAG file whose parsing process dies shows an import error naming the file and the cause.

Airflow's dag-processor records a result only when the file's parsing process sends one. A file that
ends its process at import (``os._exit(1)``, a crash in native code, the out-of-memory killer) sends none, and Airflow then records nothing: the DAG is silently missing from the UI. ``record_deaths``
makes such a death an import error of that file, with the exit status. It is installed in the
dag-processor by the workspace plugin's ``on_starting`` listener (``plugins/localflow_plugin.py``).

Imports only Airflow, and only when called.
"""

from __future__ import annotations

import functools
import signal
from typing import Any


def cause(exit_code: int | None) -> str:
    """What a parsing process's exit status says, in words a DAG author can act on."""
    if exit_code is not None and exit_code < 0:
        name = signal.Signals(-exit_code).name if -exit_code in signal.valid_signals() else str(-exit_code)
        why = "out of memory?" if name == "SIGKILL" else "a crash in native code?"
        return f"its parsing process was killed by {name} ({why}) before the file finished importing"
    return (
        f"its parsing process exited with code {exit_code} before the file finished importing: "
        "does the file call os._exit() at its top level?"
    )


@functools.cache  # once per process
def record_deaths() -> None:
    """Make the dag-processor record an import error for a file whose parsing process died.

    Before collecting the finished parses, each one that ended without a result (nor callbacks) is given
    one: ``_collect_results`` then records it as any other, in every release.
    """
    from airflow.dag_processing.manager import DagFileProcessorManager
    from airflow.dag_processing.processor import DagFileParsingResult

    collect = DagFileProcessorManager._collect_results

    @functools.wraps(collect)
    def _collect_results(self: Any, *args: Any, **kwargs: Any) -> Any:
        for file, proc in self._processors.items():
            if proc.is_ready and proc.parsing_result is None and not proc.had_callbacks:
                message = f"{file.rel_path}: {cause(proc._exit_code)}"
                proc.parsing_result = DagFileParsingResult(
                    fileloc=str(file.absolute_path),
                    serialized_dags=[],
                    import_errors={str(file.rel_path): message},
                )
        return collect(self, *args, **kwargs)

    DagFileProcessorManager._collect_results = _collect_results
