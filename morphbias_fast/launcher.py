"""The `morphbias-fast` entry point. It lists the commands without importing them, and imports cli.py (and
with it torch, seconds on a laptop) only when a command runs or shows its own help: `morphbias-fast --help`
answers in a fraction of a second. `CLIGroup` is the error policy every group of the CLI shares."""
from __future__ import annotations

import importlib

import click

from morphbias_fast.errors import MorphbiasError

# name -> the opening words of the command's help (python_tests/test_cli.py checks that they are)
COMMANDS = {
    "info": "Show what this installation was built with and what it can use right now.",
    "synth": "Write a synthetic cohort with a known morphological bias to OUT_DIR (BIDS-style).",
    "prepare": "Make a cohort from a BIDS dataset: every T1w affinely aligned to the atlas.",
    "classify": "Train the paper's 5-layer CNN on COHORT_DIR's train split (model selection on val).",
    "register": "Register every image of COHORT_DIR to its atlas with one generalizable INR.",
    "decode": "Decode one subject's latent into its displacement field.",
    "discover": "Find the subgroups where RUN_DIR's classifier fails.",
    "mitigate": "Retrain RUN_DIR's classifier from scratch so that it stops using the discovered shortcut.",
    "run": "The whole pipeline in one command.",
    "bench": "Benchmarks: our kernels against the alternative a user would pick, in the same run.",
}


class CLIGroup(click.Group):
    """A group whose commands' MorphbiasErrors, and the operating system's refusals (a folder that cannot be
    written, a path under a file, a full disk), end as a one-line message and exit status 1 (no traceback),
    and whose Ctrl-C says how to go on (exit status 130, as a shell reports SIGINT)."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except MorphbiasError as exc:
            raise click.ClickException(str(exc)) from None
        except OSError as exc:
            if exc.filename is None:  # not about a path the user gave: a real bug, keep its traceback
                raise
            raise click.ClickException(f"{exc.filename}: {exc.strerror or exc}") from None
        except KeyboardInterrupt:
            click.echo("\ninterrupted: finished stages and checkpoints are kept; rerun the same command to go on "
                       "(`run` skips what is done; `register` takes --resume)", err=True)
            raise click.exceptions.Exit(130) from None


class LazyGroup(CLIGroup):
    """The top-level group: command names and one-line help from COMMANDS; the command itself from cli.py,
    imported on first use."""

    def list_commands(self, ctx):
        return list(COMMANDS)

    def get_command(self, ctx, name):
        if name not in COMMANDS:
            return None
        return importlib.import_module("morphbias_fast.cli").main.get_command(ctx, name)

    def format_commands(self, ctx, formatter):
        with formatter.section("Commands"):
            formatter.write_dl([(name, text) for name, text in COMMANDS.items()])


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="morphbias-fast")
def main() -> None:
    """morphbias-fast: find and remove morphological bias in medical-image classifiers.

    Registers every image to an atlas with one hash-grid implicit neural representation, uses each
    subject's latent code to find the subgroups where a classifier fails, and retrains on a re-balanced,
    INR-augmented set. The compiled kernels run on the CPU everywhere and on CUDA GPUs when built with nvcc.
    `morphbias-fast COMMAND --help` explains each command.
    """
