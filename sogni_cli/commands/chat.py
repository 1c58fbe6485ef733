"""`sogni chat`: one chat completion, streamed to stdout (contract §6.1)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import List, Optional

import typer

from ..core.choices import ON_EXISTS, TASK_PROFILES, TOKEN_TYPES, TOOL_CHOICES, TOOLS_MODES, one_of
from ..core.errors import UsageError
from ..render.output import out, out_json, out_jsonl
from ..core.term import err, stdin_is_tty
from ._common import client, make_app, settings

app = make_app(
    help="One chat completion, streamed to stdout.",
    epilog="""\b
Examples:
  sogni chat "Write a haiku about rain"
  git diff | sogni chat "Write a commit message for this diff"
  sogni chat -i photo.jpg -i label.png "Compare these two pictures"
  sogni chat --tools none -s "Answer in French" "Good morning"
  sogni chat "Draw a red fox in the snow" -o out/        (hosted tools: media saved)
  sogni chat --no-exec "Make an image of a cat"          (print tool calls instead)
  sogni chat --function weather.yaml "Weather in Paris?" (local tool loop)
  sogni chat --messages convo.json --save-messages convo.json "And then?"
  sogni chat --jsonl "Hello" | jq -c .""",
)


def _template_kwargs(items: List[str]) -> dict:
    import json

    out_: dict = {}
    for item in items:
        if "=" not in item:
            raise UsageError(f"Invalid --template-kwarg {item!r}: expected KEY=VALUE.")
        key, raw = item.split("=", 1)
        try:
            out_[key.strip()] = json.loads(raw)
        except ValueError:
            out_[key.strip()] = raw
    return out_


@app.command()
def chat(
    ctx: typer.Context,
    prompt: Optional[str] = typer.Argument(None, help="The prompt. Piped standard input is read too (put before it).", show_default=False),
    model: Optional[str] = typer.Option(None, "-m", "--model", help="Model id (see `sogni models`).", show_default=False),
    system: Optional[str] = typer.Option(None, "-s", "--system", help="System message.", show_default=False),
    developer: Optional[str] = typer.Option(None, "--developer", help="Developer message (implies the coding profile server-side).", show_default=False),
    messages: Optional[str] = typer.Option(None, "--messages", help="Conversation so far: JSON or YAML list of messages (FILE or -).", show_default=False),
    save_messages: Optional[Path] = typer.Option(None, "--save-messages", help="Write the conversation, with the reply, to FILE (JSON).", show_default=False),
    max_tokens: Optional[int] = typer.Option(None, "--max-tokens", show_default=False),
    temperature: Optional[float] = typer.Option(None, "--temperature", show_default=False),
    top_p: Optional[float] = typer.Option(None, "--top-p", show_default=False),
    top_k: Optional[int] = typer.Option(None, "--top-k", show_default=False),
    min_p: Optional[float] = typer.Option(None, "--min-p", show_default=False),
    repetition_penalty: Optional[float] = typer.Option(None, "--repetition-penalty", show_default=False),
    frequency_penalty: Optional[float] = typer.Option(None, "--frequency-penalty", show_default=False),
    presence_penalty: Optional[float] = typer.Option(None, "--presence-penalty", show_default=False),
    stop: Optional[List[str]] = typer.Option(None, "--stop", help="Stop sequence (repeatable).", show_default=False),
    task_profile: Optional[str] = typer.Option(None, "--task-profile", help=one_of(TASK_PROFILES) + ".", show_default=False),
    think: Optional[bool] = typer.Option(None, "--think/--no-think", help="Ask for (or turn off) reasoning.", show_default=False),
    template_kwarg: Optional[List[str]] = typer.Option(None, "--template-kwarg", help="chat_template_kwargs entry K=V (repeatable).", show_default=False),
    token_type: Optional[str] = typer.Option(None, "--token-type", help=one_of(TOKEN_TYPES) + ".", show_default=False),
    response_format: Optional[str] = typer.Option(None, "--response-format", help="json, text, or a JSON Schema FILE.", show_default=False),
    stream: bool = typer.Option(True, "--stream/--no-stream", help="Stream the reply as it is written."),
    show_thinking: bool = typer.Option(False, "--show-thinking", help="Show reasoning on stderr."),
    image: Optional[List[str]] = typer.Option(None, "-i", "--image", help="Image for vision input (PATH or -; repeatable, up to 20).", show_default=False),
    tools: Optional[str] = typer.Option(None, "--tools", help="Sogni tools: " + one_of(TOOLS_MODES) + ".", show_default=False),
    no_exec: bool = typer.Option(False, "--no-exec", help="Return tool calls instead of running hosted tools."),
    tool_choice: Optional[str] = typer.Option(None, "--tool-choice", help=one_of(TOOL_CHOICES) + " | NAME.", show_default=False),
    function: Optional[List[Path]] = typer.Option(None, "--function", help="Custom function tool from a YAML/JSON FILE (repeatable).", show_default=False),
    max_rounds: int = typer.Option(5, "--max-rounds", help="Rounds of local function calls before giving up."),
    output_dir: Optional[Path] = typer.Option(None, "-o", "--output-dir", help="Folder for media made by hosted tools.", show_default=False),
    name: Optional[str] = typer.Option(None, "--name", help="File name template for saved media.", show_default=False),
    on_exists: str = typer.Option("suffix", "--on-exists", help=one_of(ON_EXISTS) + "."),
    no_download: bool = typer.Option(False, "--no-download", help="List media URLs on stderr instead of saving."),
    as_json: bool = typer.Option(False, "--json", help="Print the final completion (plus \"artifacts\") as JSON."),
    jsonl: bool = typer.Option(False, "--jsonl", help="Print one JSON event per line as things happen."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the request instead of sending it."),
) -> None:
    """One chat completion, streamed to stdout."""
    from ..api.chat import ChatRequest, load_functions, load_messages, response_format_from, run_chat

    if as_json and jsonl:
        raise UsageError("--json and --jsonl cannot be used together.")
    if on_exists not in ("suffix", "overwrite", "skip", "error"):
        raise UsageError(f"Invalid --on-exists {on_exists!r}: one of suffix, overwrite, skip, error.")
    images = list(image or [])
    if images.count("-") > 1:
        raise UsageError("Only one -i may read standard input (-).")
    if "-" in images and messages == "-":
        raise UsageError("Only one of -i - and --messages - can read standard input.")
    stdin_used = "-" in images or messages == "-"

    # Prompt: argument, and piped standard input (prepended).
    text = prompt
    if not stdin_used and sys.stdin is not None and not stdin_is_tty():
        piped = _read_stdin_text()
        if piped.strip():
            text = f"{piped.rstrip()}\n\n{prompt}" if prompt else piped
    if prompt == "":
        raise UsageError("The prompt is empty.")

    s = settings(ctx, dry_run=dry_run)
    req = ChatRequest(
        prompt=text, system=system, developer=developer,
        model=model or s.default("model"),
        max_tokens=max_tokens, temperature=temperature, top_p=top_p, top_k=top_k, min_p=min_p,
        repetition_penalty=repetition_penalty, frequency_penalty=frequency_penalty,
        presence_penalty=presence_penalty, stop=list(stop) if stop else None, task_profile=task_profile,
        think=think, template_kwargs=_template_kwargs(template_kwarg or []),
        token_type=token_type or s.token_type, tools=tools, no_exec=no_exec, tool_choice=tool_choice,
        stream=stream, max_rounds=max_rounds,
    )
    # Validate cheap things first, before reading any file.
    from ..api.chat import validate_request

    validate_request(req)
    if len(images) > 20:
        raise UsageError(f"Too many images ({len(images)}): at most 20 per request.")
    if messages:
        req.messages = load_messages(messages, sys.stdin)
    if response_format:
        req.response_format = response_format_from(response_format)
    for f in function or []:
        req.functions.extend(load_functions(str(f)))
    if images:
        from ..media.inputs import prepare_vision_images

        req.images = [v.data_uri for v in prepare_vision_images(images, stdin=sys.stdin.buffer if "-" in images else None)]
    if not (req.prompt or req.images or req.messages or req.system or req.developer):
        raise UsageError("Nothing to send: give a prompt, pipe text on standard input, or use --messages.",
                         hint='sogni chat "Hello"')

    if save_messages is not None and save_messages.is_dir():
        raise UsageError(f"--save-messages {save_messages} is a folder; give a file name.")
    if output_dir is not None:
        from ..jobs.pipeline import check_output_paths

        check_output_paths(output_dir)
    api = client(ctx, dry_run=dry_run)
    from ..render.chat_view import ChatView

    view = ChatView(mode="json" if as_json else "jsonl" if jsonl else "text", show_thinking=show_thinking,
                    quiet=s.quiet)
    try:
        result = run_chat(api, req, on_event=view.handle)
    finally:
        view.close()

    # Hosted media.
    from ..api.hosted import find_media

    media = find_media(result.extras, result.text)
    saved_paths: list[str] = []
    exit_code = 0
    if media:
        from ..jobs.chat_media import save_hosted_media
        from ..render.progress import make_progress

        report = save_hosted_media(
            api, media, prompt=text, output_dir=s.out_dir(output_dir), name=name, on_exists=on_exists,
            no_download=no_download, quiet=s.quiet, emit=view.handle,
            progress_factory=lambda: make_progress(sys.stderr, quiet=s.quiet),
        )
        saved_paths = report.paths
        exit_code = report.exit_code
    if save_messages is not None:
        _save_messages(save_messages, result.messages)
    if as_json:
        doc = dict(result.completion)
        doc["artifacts"] = saved_paths
        out_json(doc)
    elif jsonl:
        pass
    if result.pending_calls and not as_json and not jsonl:
        import json

        for call in result.pending_calls:
            out(json.dumps({"id": call.id, "name": call.name, "arguments": call.arguments}, ensure_ascii=False))
    if exit_code:
        raise typer.Exit(exit_code)


def _read_stdin_text() -> str:
    """Piped standard input as UTF-8 text (binary input is a usage error, not a crash)."""
    stream = getattr(sys.stdin, "buffer", None)
    try:
        data = stream.read() if stream is not None else sys.stdin.read().encode("utf-8", "surrogateescape")
    except (OSError, ValueError):
        return ""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise UsageError("Standard input is not UTF-8 text.",
                         hint="Pipe text to sogni chat; give images with -i (or -i - for one image on stdin).") from None


def _save_messages(path: Path, messages: list) -> None:
    import json
    import os

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"Cannot write --save-messages {path}: {exc.strerror or exc}") from None
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(messages, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)


_ = (out_jsonl, err)
