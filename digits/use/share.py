"""Push the results to the DVC remote so that a colleague's run of the same params restores them.

    python -m digits.use.share [-r REMOTE] [-A]      (.venv/bin/digits-push is the same)

This is ``dvc push --run-cache`` and one thing more. DVC 3.67 pushes the run-cache's records
(which code, data and params gave which outputs) and the outputs of the revisions it pushes,
but not the other outputs those records name: the metrics and plot data, which are ``cache:
false`` (they travel in git, not in DVC's remote), and any param set never committed. Without
them a colleague's ``dvc exp run --pull`` finds the record, cannot check the outputs out, and
trains again. This also pushes every output the local run-cache names.
"""

from __future__ import annotations

import argparse

from digits.core import cli
from digits.core.errors import PipelineError


def push(remote: str | None = None, all_commits: bool = False) -> tuple[int, int]:
    """Push the workspace's (or every commit's) data and the run-cache with all its outputs.

    Returns (files pushed by ``dvc push``, run-cache outputs pushed beyond them).
    """
    from dvc.config import NoRemoteError
    from dvc.repo import Repo

    with Repo() as repo:
        try:
            pushed = repo.push(remote=remote, all_commits=all_commits, run_cache=False)
            records = repo.stage_cache.push(remote)  # [(key, value)] of every record sent
            extra = 0
            for odb, objects in repo.stage_cache.get_used_objs(records).items():
                result = repo.cloud.push(objects, remote=remote, odb=odb)
                if result.failed:
                    failed = len(result.failed)
                    raise PipelineError(f"{failed} run-cache outputs failed to upload; run it again")
                extra += len(result.transferred)
        except NoRemoteError as exc:
            fix = "add one with an absolute path or URL: dvc remote add -d storage /srv/dvc/digits"
            raise PipelineError(f"no DVC remote; {fix}") from exc
    return pushed + len(records), extra


def main() -> None:
    parser = argparse.ArgumentParser(prog="digits-push", description=__doc__.split("\n\n")[0])
    parser.add_argument("-r", "--remote", help="the DVC remote (default: the default remote)")
    parser.add_argument("-A", "--all-commits", action="store_true", help="push the data of every commit")
    args = parser.parse_args()
    pushed, extra = push(args.remote, args.all_commits)
    print(f"digits-push: {pushed} files and run-cache records pushed, and {extra} run-cache outputs")


def run() -> None:
    """The ``digits-push`` command."""
    cli.run(main)


if __name__ == "__main__":
    run()
