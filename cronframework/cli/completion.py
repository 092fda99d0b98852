"""`cronframework completion bash|zsh`: a completion script, generated from the parser so it never lags a flag.

Subcommands, their flags, the values of `-o`, files where a flag or argument takes one, and job names where a
command takes JOB: those come from `cronframework status -o name` at the time of the TAB, so they follow the same
environment (CRONFRAMEWORK_ADDR, CRONFRAMEWORK_ZK...) as the command being typed. zsh runs the same function
through bashcompinit.
"""

from __future__ import annotations

import argparse
import shlex

FILE_METAVARS = {"FILE", "PATH", "DIR"}
FILE_DESTS = {"state_dir", "paths", "file"}

BASH = """# cronframework completion for bash: source it, e.g. from ~/.bashrc:
#   source <(cronframework completion bash)
_cronframework() {{
  local cur="${{COMP_WORDS[COMP_CWORD]}}" prev="${{COMP_WORDS[COMP_CWORD-1]}}" cmd="${{COMP_WORDS[1]}}" opts=""
  if [ "$COMP_CWORD" -eq 1 ]; then
    COMPREPLY=($(compgen -W {commands} -- "$cur"))
    return
  fi
  case "$cmd $prev" in
{value_cases}
  esac
  case "$cmd" in
{option_cases}
  esac
  if [[ "$cur" == -* ]]; then
    COMPREPLY=($(compgen -W "$opts" -- "$cur"))
    return
  fi
  case "$cmd" in
    {job_commands}) COMPREPLY=($(compgen -W "$(cronframework status -o name --no-lookup 2>/dev/null)" -- "$cur")) ;;
    {file_commands}) COMPREPLY=($(compgen -f -- "$cur")) ;;
  esac
}}
complete -o filenames -F _cronframework cronframework
"""

ZSH_HEAD = """#compdef cronframework
# cronframework completion for zsh: source it, e.g. from ~/.zshrc:
#   source <(cronframework completion zsh)
autoload -U +X bashcompinit && bashcompinit
"""


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "completion",
        help="print a shell completion script (bash or zsh)",
        description="Print a shell completion script for bash or zsh.",
        epilog="examples:\n  source <(cronframework completion bash)   # in ~/.bashrc\n"
        "  source <(cronframework completion zsh)    # in ~/.zshrc",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("shell", choices=("bash", "zsh"), metavar="SHELL", help="bash or zsh")
    parser.set_defaults(handler=lambda args: handle(args, sub))


def handle(args: argparse.Namespace, sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> int:
    script = bash_script(sub.choices)
    print(ZSH_HEAD + script if args.shell == "zsh" else script, end="")
    return 0


def bash_script(commands: dict[str, argparse.ArgumentParser]) -> str:
    values: list[str] = []  # "COMMAND FLAG" -> what completes the flag's value: files, or its choices
    for name, parser in commands.items():
        for action in _flags(parser):
            completer = _value_completer(action)
            if completer is not None:
                values += [_value_case(f"{name} {flag}", completer) for flag in action.option_strings]
    return BASH.format(
        commands=shlex.quote(" ".join([*commands, "--help", "--version"])),
        value_cases="\n".join(values),
        option_cases="\n".join(
            f"    {name}) opts={shlex.quote(' '.join(_options(parser)))} ;;" for name, parser in commands.items()
        ),
        job_commands="|".join(name for name, parser in commands.items() if _takes(parser, "JOB")) or "_none",
        file_commands="|".join(name for name, parser in commands.items() if _takes_files(parser)) or "_none",
    )


def _flags(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    return [action for action in parser._actions if action.option_strings]


def _options(parser: argparse.ArgumentParser) -> list[str]:
    return [flag for action in _flags(parser) for flag in action.option_strings]


def _value_completer(action: argparse.Action) -> str | None:
    if action.nargs == 0:
        return None
    if action.choices:
        return " ".join(str(choice) for choice in action.choices)
    if action.metavar in FILE_METAVARS or action.dest in FILE_DESTS:
        return "-f"
    return None


def _value_case(pattern: str, completer: str) -> str:
    action = "compgen -f" if completer == "-f" else f"compgen -W {shlex.quote(completer)}"
    return f'    "{pattern}") COMPREPLY=($({action} -- "$cur")); return ;;'


def _positionals(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    return [action for action in parser._actions if not action.option_strings and action.dest != "help"]


def _takes(parser: argparse.ArgumentParser, metavar: str) -> bool:
    return any(action.metavar == metavar for action in _positionals(parser))


def _takes_files(parser: argparse.ArgumentParser) -> bool:
    return any(action.metavar in FILE_METAVARS or action.dest in FILE_DESTS for action in _positionals(parser))
