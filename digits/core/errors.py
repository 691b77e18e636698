"""Errors a user can fix: the stages print them as one line, never a traceback."""


class PipelineError(Exception):
    """A problem with the input or the environment, with the fix in its message."""


class ParamsError(PipelineError, ValueError):
    """params.yaml holds a value the pipeline cannot use."""


class DataError(PipelineError, ValueError):
    """A data file is missing, corrupt or not what the pipeline expects."""


# What to say when a pipeline output is missing: DVC's cache usually still has it.
RESTORE = "restore it from DVC's cache with `dvc checkout`, or re-create it with `dvc repro`"
