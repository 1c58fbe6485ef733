"""The root command: global options, and subcommands loaded only when they are run.

``sogni --help`` lists the commands from the table below without importing any of them, so start-up
stays fast; ``sogni CMD`` imports just ``sogni_cli.commands.CMD``.
"""

from __future__ import annotations

import importlib
from typing import Any, Optional

import typer
from typer.core import TyperGroup

from . import __version__
from .core.errors import StdoutClosed, exit_codes_text
from .core.options import GlobalOptions, hoist_globals

# name -> (module, one-line help). Order is the order shown in --help.
COMMANDS: dict[str, tuple[str, str]] = {
    "chat": ("sogni_cli.commands.chat", "One chat completion, streamed to stdout (vision, tools, hosted media)."),
    "image": ("sogni_cli.commands.image", "Generate images with exact parameters."),
    "edit": ("sogni_cli.commands.edit", "Edit or combine reference images."),
    "video": ("sogni_cli.commands.video", "Text/image-to-video, sound-to-video, video-to-video."),
    "music": ("sogni_cli.commands.music", "Generate music, with lyrics, bpm, key and duration."),
    "speech": ("sogni_cli.commands.speech", "Text to speech."),
    "tools": ("sogni_cli.commands.tools", "The hosted tool catalogue; run any tool with exact arguments."),
    "workflow": ("sogni_cli.commands.workflow", "Follow, replay, cancel and re-download durable workflows."),
    "template": ("sogni_cli.commands.template", "Saved workflow templates: list, create, fork, run by name."),
    "run": ("sogni_cli.commands.run", "List, follow, cancel and approve durable chat runs."),
    "recipe": ("sogni_cli.commands.recipe", "Batch YAML recipes: validate, plan, run, report."),
    "logs": ("sogni_cli.commands.logs", "The log of chats, media jobs and recipe runs: list, search, show, files."),
    "preset": ("sogni_cli.commands.preset", "Save and list named chat options (--preset NAME)."),
    "alias": ("sogni_cli.commands.alias", "Short names for models, resolved wherever a model is named."),
    "models": ("sogni_cli.commands.models", "List the available models (chat, image, video, audio)."),
    "loras": ("sogni_cli.commands.loras", "List LoRAs, their strength ranges and the models they work with."),
    "account": ("sogni_cli.commands.account", "Balances, subscription, usage this cycle, fair-use state and limits."),
    "auth": ("sogni_cli.commands.auth", "Store, show and remove the API key."),
    "config": ("sogni_cli.commands.config_cmd", "Show and change settings in config.yaml."),
    "doctor": ("sogni_cli.commands.doctor", "Check the installation, settings, key and API connection."),
    "emulator": ("sogni_cli.commands.emulator", "Serve the local stand-in for the API in the foreground."),
    "completion": ("sogni_cli.commands.completion", "Print a shell completion script (bash, zsh, fish, powershell)."),
}

EPILOG = """\b
Examples:
  sogni chat "Write a haiku about rain"
  cat notes.md | sogni chat --stdin "Summarise this" --no-stream
  sogni chat -i photo.jpg "What is in this picture?"
  sogni image "a lighthouse at dusk" --width 1024 --height 768 -n 2 -o out/
  sogni --emulator image "a lighthouse at dusk" -o out/     (offline, no key)
  sogni recipe run recipes/product-shots.yaml --concurrency 8

\b
""" + exit_codes_text() + "\n"


def option_names(cmd: Any) -> dict[str, bool]:
    """Every option name of a command and its subcommands -> whether it takes a value."""
    names: dict[str, bool] = {}
    stack = [cmd] if cmd is not None else []
    while stack:
        c = stack.pop()
        for p in getattr(c, "params", []):
            if getattr(p, "param_type_name", "") != "option":
                continue
            takes = not (getattr(p, "is_flag", False) or getattr(p, "count", False))
            for n in list(p.opts) + list(getattr(p, "secondary_opts", [])):
                names[n] = takes
        stack.extend(getattr(c, "commands", {}).values())
    names.setdefault("--help", False)
    names.setdefault("-h", False)
    return names


class LazyGroup(TyperGroup):
    """A group whose subcommands are imported on first use."""

    lazy_commands = COMMANDS

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except BrokenPipeError:
            raise StdoutClosed() from None

    def list_commands(self, ctx: Any) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        entry = COMMANDS.get(cmd_name)
        if entry is None:
            return None
        module = importlib.import_module(entry[0])
        cmd = typer.main.get_command(module.app)
        cmd.name = cmd_name
        epilog = getattr(module.app.info, "epilog", None)
        if not cmd.epilog and isinstance(epilog, str):
            cmd.epilog = epilog  # a one-command app: its examples belong to the command
        for sub in getattr(cmd, "commands", {}).values():
            if not sub.epilog and cmd.epilog:
                sub.epilog = cmd.epilog  # `sogni tools run --help` shows the group's examples too
        return cmd

    def format_commands(self, ctx: Any, formatter: Any) -> None:
        rows = [(name, help_) for name, (_, help_) in COMMANDS.items()]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def parse_args(self, ctx: Any, args: list[str]) -> Any:
        return super().parse_args(ctx, self._hoist_globals(ctx, list(args)))

    def _hoist_globals(self, ctx: Any, args: list[str]) -> list[str]:
        return hoist_globals(args, COMMANDS, lambda name: option_names(self.get_command(ctx, name)))

    def resolve_command(self, ctx: Any, args: list[str]) -> Any:
        name = args[0] if args else None
        if name and name not in COMMANDS and not name.startswith("-"):
            import difflib

            close = difflib.get_close_matches(name, list(COMMANDS), n=1)
            from .cli_errors import UsageError as ClickUsageError

            raise ClickUsageError(
                f"No such command {name!r}." + (f" Did you mean {close[0]!r}?" if close else ""), ctx
            )
        return super().resolve_command(ctx, args)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"sogni {__version__}")
        raise typer.Exit()


app = typer.Typer(
    cls=LazyGroup,
    add_completion=False,
    rich_markup_mode=None,
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
    help="sogni: the Sogni Intelligence API from the shell, CI and batch recipes.",
    epilog=EPILOG,
    pretty_exceptions_enable=False,
)


@app.callback()
def root(
    ctx: typer.Context,
    api_key: Optional[str] = typer.Option(None, "--api-key", metavar="KEY", help="API key (prefer SOGNI_API_KEY: flags show in `ps`).", show_default=False),
    base_url: Optional[str] = typer.Option(None, "--base-url", metavar="URL", help="API base URL [env SOGNI_BASE_URL].", show_default=False),
    profile: Optional[str] = typer.Option(None, "--profile", metavar="NAME", help="Profile in config.yaml [env SOGNI_PROFILE].", show_default=False),
    timeout: Optional[float] = typer.Option(None, "--timeout", metavar="SECONDS", help="Seconds for any single wait [env SOGNI_TIMEOUT].", show_default=False),
    max_retries: Optional[int] = typer.Option(None, "--max-retries", metavar="N", help="Retries on transient errors [env SOGNI_MAX_RETRIES; default 2].", show_default=False),
    quiet: bool = typer.Option(False, "-q", "--quiet", help="No progress; warnings and errors only."),
    verbose: bool = typer.Option(False, "-v", "--verbose", help="Log requests and responses to stderr (secrets redacted)."),
    no_color: bool = typer.Option(False, "--no-color", help="No colour [env NO_COLOR]."),
    emulator: bool = typer.Option(False, "--emulator", help="Run against the built-in local emulator (offline, no key)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the request(s) instead of sending them."),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version and exit."),
) -> None:
    ctx.obj = GlobalOptions(
        api_key=api_key, base_url=base_url, profile=profile, timeout=timeout, max_retries=max_retries,
        quiet=quiet, verbose=verbose, no_color=no_color, emulator=emulator, dry_run=dry_run,
    )
