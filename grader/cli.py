"""The ``hwgen`` command line: each command parses options, calls the library and prints.

Data goes to standard output; progress, warnings and errors to standard error. A user error
is one line starting with ``Error:`` and exit code 1; a usage error exits with 2.
"""

from __future__ import annotations

import click

from grader import __version__, formatting, variants
from grader.jsonio import InputError, dumps, load_json_file
from grader.params import HW2, Params, answers_to_json, solve_one

SEED_HELP = "The secret seed of the class (default: the HWGEN_SEED environment variable)."


def warn(message: str) -> None:
    click.echo(f"Warning: {message}", err=True)


def load_params(path: str | None) -> Params:
    """The instance in ``path`` ('-' for stdin), or the HW#2 instance when no path is given."""
    if path is None:
        return HW2
    try:
        return Params.from_json(load_json_file(path), warn=warn)
    except InputError as exc:
        raise click.ClickException(f"{'standard input' if path == '-' else path}: {exc}") from None


seed_option = click.option("--seed", envvar="HWGEN_SEED", required=True, help=SEED_HELP)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="hwgen")
def cli():
    """Generate, solve and grade the hand-computed backpropagation homework (HW#2).

    A 3-4-2 network with an ELU hidden layer, a softmax output, cross-entropy loss and
    one step of gradient descent. Every student gets a variant of their own, reproducible
    from a secret seed and their student id.

    Example:

        hwgen solve
    """


@cli.command()
@click.option(
    "--params",
    "params_path",
    metavar="FILE",
    help="Parameters JSON to solve ('-' for standard input). Default: the HW#2 instance.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["md", "json"]),
    default="md",
    show_default=True,
    help="md: readable tables to 4 decimals; json: every answer at full precision.",
)
def solve(params_path, fmt):
    """Solve one instance: forward pass, gradients and one gradient-descent step.

    The parameters JSON has the keys x, v, w, target (one-hot), lr and, optionally,
    activation (elu, relu, leaky_relu, sigmoid or tanh; default elu).

    Example:

        hwgen solve

        hwgen solve --params my_instance.json --format json

        hwgen variant --student alice | hwgen solve --params -
    """
    params = load_params(params_path)
    answers = solve_one(params)
    if fmt == "json":
        click.echo(dumps(answers_to_json(answers)), nl=False)
    else:
        click.echo(formatting.markdown_solution(params, answers), nl=False)


@cli.command()
@seed_option
@click.option("--student", "student_id", required=True, help="The student's id, as in the roster.")
def variant(seed, student_id):
    """Print one student's parameters as JSON (the input of `hwgen solve --params`).

    The same seed and student id give the same variant on every machine, forever.

    Example:

        HWGEN_SEED=s3cret hwgen variant --student 2018170622
    """
    click.echo(dumps(variants.variant(seed, student_id).to_json()), nl=False)


def main(**kwargs):
    cli(**kwargs)
