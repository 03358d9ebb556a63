"""A pipeline run that spans machines: each worker in its own clone, nothing shared but a git and a DVC remote.

Off by default: on one machine every worker shares one checkout and its DVC cache. With `orchestration.remote`
(params.yaml) or the pipeline's `remote` parameter set to a DVC remote's name, a run gets a git branch,
`videor1/run/<flow run name>`, and each stage task, on whichever worker it lands:

1. brings its worker's checkout to the branch's tip: dvc.lock, params and the small git-tracked outputs
   (metrics, plots, reports) come with it;
2. `dvc pull`s from the DVC remote the stage's cached dependencies and its own cached outputs, so a stage that
   already ran (on any machine) is found up to date and skipped;
3. runs, here, the producer of a dependency that no remote carries (git-ignored and uncached: the base model,
   which every machine links or builds for itself); any other missing dependency is an error naming it;
4. `dvc repro --single-item`s the stage, `dvc push`es its cached outputs, and only then commits dvc.lock and its
   git-tracked outputs to the branch and pushes that.

The commit follows the push, so the branch never names data the remote lacks: a push cut off half way leaves
objects that no dvc.lock on the branch refers to, and the stage runs again. DVC stores objects by content hash and
checks them on pull, so no partial object passes for a whole one.
"""

from __future__ import annotations

import os
import subprocess
from contextlib import chdir, contextmanager
from dataclasses import dataclass
from pathlib import Path

BRANCH_PREFIX = "videor1/run/"


@dataclass(frozen=True)
class Output:
    path: str  # relative to the project root
    stage: str  # the stage that makes it, named as `dvc repro` run at the root names it
    cached: bool  # in the DVC cache, so a DVC remote can carry it
    in_git: bool  # uncached and not git-ignored: git carries it


@dataclass(frozen=True)
class StageIO:
    outs: list[Output]
    inputs: list[Output]  # the outputs of other stages this stage depends on (code and params are in git)


def stage_target(stage, project: Path) -> str:
    """How `dvc repro` run in ``project`` names a DVC stage: `name`, or `sub/dvc.yaml:name` outside the top file."""
    dvcfile = os.path.relpath(stage.dvcfile.path, project)
    return stage.name if dvcfile == "dvc.yaml" else f"{dvcfile}:{stage.name}"


@contextmanager
def dvc_repo(project: Path):
    """DVC's Repo for ``project``, entered there: DVC reads targets and paths relative to the working directory."""
    from dvc.repo import Repo  # imported late, as in flows.pipeline.run_order

    with chdir(project), Repo(str(project)) as repo:
        yield repo


def stage_io(project: Path, target: str) -> StageIO:
    """The stage's outputs and its inputs from other stages: what a checkout must pull, make or publish for it."""
    with dvc_repo(project) as repo:
        ignored = _git_ignored(
            project, [os.path.relpath(o.fs_path, project) for s in repo.index.stages for o in s.outs]
        )

        def output(out) -> Output:
            path = os.path.relpath(out.fs_path, project)
            return Output(
                path, stage_target(out.stage, project), out.use_cache, not out.use_cache and path not in ignored
            )

        (stage,) = repo.stage.collect(target)
        everyone = [o for s in repo.index.stages for o in s.outs if s.addressing != stage.addressing]
        inputs = []
        for dep in stage.deps:
            producer = next((o for o in everyone if o.fs.isin_or_eq(dep.fs_path, o.fs_path)), None)
            if producer is not None and all(i.path != output(producer).path for i in inputs):
                inputs.append(output(producer))
        return StageIO([output(o) for o in stage.outs], inputs)


def _git_ignored(project: Path, paths: list[str]) -> set[str]:
    out = subprocess.run(
        ["git", "check-ignore", "--no-index", "--stdin"],
        cwd=project,
        input="\n".join(paths),
        capture_output=True,
        text=True,
    )
    return set(out.stdout.split())


@dataclass(frozen=True)
class RunCheckout:
    """One worker's checkout of one pipeline run (see the module docstring)."""

    root: Path
    branch: str
    dvc_remote: str
    git_remote: str = "origin"

    @property
    def handoff(self) -> dict:
        """What a child flow needs to find the same run: JSON, for a deployment's parameters."""
        return {"branch": self.branch, "dvc_remote": self.dvc_remote, "git_remote": self.git_remote}

    def git(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        out = subprocess.run(["git", *args], cwd=self.root, capture_output=True, text=True)
        if check and out.returncode != 0:
            raise RuntimeError(
                f"git {' '.join(args)} failed in {self.root}: {out.stderr.strip() or out.stdout.strip()}"
            )
        return out

    def dvc(self, command: str, **kwargs):
        """``Repo(root).<command>(**kwargs)``: DVC's API in this process (a `dvc` process costs a second or two to
        start, several times per stage); a failure names the command and the checkout."""
        try:
            with dvc_repo(self.root) as repo:
                return getattr(repo, command)(**kwargs)
        except Exception as err:  # DVC's errors, for the flow's log
            raise RuntimeError(f"dvc {command} {kwargs.get('targets') or ''} failed in {self.root}: {err}") from err

    def start(self) -> None:
        """Put this checkout on the run's branch: the branch's tip if it exists (a retried run carries on from
        there), else a new branch at HEAD holding this checkout's uncommitted changes to tracked files."""
        if self.git("ls-remote", "--exit-code", "--heads", self.git_remote, self.branch, check=False).returncode == 0:
            self.sync()
            return
        self.git("checkout", "-B", self.branch)
        self.commit(f"{self.branch}: start", all_tracked=True)

    def sync(self) -> None:
        """The branch's tip, replacing this checkout's tracked files (a worker's checkout holds no work of its own);
        ignored files (DVC-linked outputs, checkpoints) stay, and DVC compares them with the new dvc.lock."""
        self.git(
            "fetch",
            "--quiet",
            self.git_remote,
            f"+refs/heads/{self.branch}:refs/remotes/{self.git_remote}/{self.branch}",
        )
        self.git("checkout", "--quiet", "-f", "-B", self.branch, f"refs/remotes/{self.git_remote}/{self.branch}")
        self.git("clean", "--quiet", "-f", "--", "dvc.lock")  # a lock the branch lacks records runs it never got

    def pull(self, paths: list[str]) -> None:
        if paths:  # allow_missing: an output no dvc.lock on the branch names yet is not an error here
            self.dvc("pull", targets=paths, remote=self.dvc_remote, force=True, allow_missing=True)

    def publish(self, target: str, io: StageIO) -> None:
        """Push the stage's cached outputs, then commit dvc.lock and its git-tracked outputs and push the branch."""
        if any(o.cached for o in io.outs):
            self.dvc("push", targets=[target], remote=self.dvc_remote)
        paths = ["dvc.lock", *(o.path for o in io.outs if o.in_git)]
        paths += [str(Path(o.path).parent / ".gitignore") for o in io.outs if o.cached]  # DVC's entries for its outputs
        self.git("add", "-A", "--", *sorted({p for p in paths if (self.root / p).exists()}))
        self.commit(f"{self.branch}: {target}")

    def commit(self, message: str, all_tracked: bool = False) -> None:
        if all_tracked:
            self.git("add", "-u")
        if self.git("diff", "--cached", "--quiet", check=False).returncode != 0:
            identity = (
                []
                if self.git("config", "user.email", check=False).stdout.strip()
                else ["-c", "user.name=videor1", "-c", "user.email=videor1@localhost"]
            )
            self.git(*identity, "commit", "--quiet", "--no-verify", "-m", message)
        self.git("push", "--quiet", self.git_remote, f"HEAD:refs/heads/{self.branch}")


def prepare_inputs(checkout: RunCheckout, target: str, io: StageIO, run_here) -> None:
    """Make every input of ``target`` present in this checkout: pull what the DVC remote carries (and the stage's
    own outputs), have ``run_here`` (which skips an up-to-date stage) make what only this machine can make, and
    fail on anything else."""
    checkout.pull(sorted({o.path for o in io.inputs if o.cached} | {o.path for o in io.outs if o.cached}))
    made_here = set()
    for out in io.inputs:
        if not out.cached and not out.in_git:  # carried by no remote: each machine makes (or links) its own
            if out.stage in made_here:
                continue
            made_here.add(out.stage)
            prepare_inputs(checkout, out.stage, stage_io(checkout.root, out.stage), run_here)
            run_here(out.stage)
        elif not (checkout.root / out.path).exists():
            carrier = f"DVC remote {checkout.dvc_remote!r}" if out.cached else f"git branch {checkout.branch!r}"
            raise RuntimeError(
                f"{target}: input {out.path} (made by stage {out.stage}) is not on the {carrier}; "
                f"run {out.stage} first (or push its outputs there)"
            )


def run_on_checkout(checkout: RunCheckout, stage: str, run_here) -> bool:
    """One stage of a run across machines, on this checkout: sync, make its inputs present, run it unless DVC finds
    it up to date (``run_here`` says whether it ran), publish what it made. Whether it ran."""
    checkout.sync()
    io = stage_io(checkout.root, stage)
    prepare_inputs(checkout, stage, io, run_here)
    ran = run_here(stage)
    if ran:
        checkout.publish(stage, io)
    return ran
