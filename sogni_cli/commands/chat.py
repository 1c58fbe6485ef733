"""`sogni chat`: one chat completion, streamed to stdout (contract §6.1)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, List, Optional

import typer

from ..core.choices import BILLING_MODES, ON_EXISTS, TASK_PROFILES, TOKEN_TYPES, TOOL_CHOICES, TOOLS_MODES, one_of
from ..core.errors import SogniError, UsageError
from ..render.output import out_json, out_jsonl
from ..core.term import stdin_is_tty, warn
from ._common import client, make_app, settings

app = make_app(
    help="One chat completion, streamed to stdout.",
    epilog="""\b
Examples:
  sogni chat "Write a haiku about rain"
  git diff | sogni chat "Write a commit message for this diff"   (piped text goes before the prompt)
  sogni chat < question.txt                              (no prompt: stdin is the prompt)
  sogni chat -- "-v is a flag; explain it"               (a prompt starting with -)
  sogni chat -i photo.jpg -i label.png "Compare these two pictures"
  sogni chat --tools none -s "Answer in French" "Good morning"
  sogni chat "Draw a red fox in the snow" -o out/        (hosted tools: media saved)
  sogni chat --no-exec "Make an image of a cat"          (print tool calls instead)
  sogni chat --function weather.yaml "Weather in Paris?" (local tool loop)
  sogni chat --messages convo.json --save-messages convo.json "And then?"
  sogni chat --jsonl "Hello" | jq -c .
  sogni chat --durable "Draw a red fox" -o out/         (resumable run; Ctrl-C cancels it)
  sogni chat -c "And then?"                              (continue the latest conversation)
  sogni chat --preset terse "Explain DNS\"""",
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
    prompt: Optional[str] = typer.Argument(None, help="The prompt (- : read it from standard input). Without a prompt, piped standard input is the prompt.", show_default=False),
    model: Optional[str] = typer.Option(None, "-m", "--model", help="Model id (see `sogni models`).", show_default=False),
    system: Optional[str] = typer.Option(None, "-s", "--system", help="System message.", show_default=False),
    developer: Optional[str] = typer.Option(None, "--developer", help="Developer message (implies the coding profile server-side).", show_default=False),
    messages: Optional[str] = typer.Option(None, "--messages", help="Conversation so far: JSON or YAML list of messages (FILE or -).", show_default=False),
    save_messages: Optional[Path] = typer.Option(None, "--save-messages", help="Write the conversation, with the reply, to FILE (JSON); also when the run fails after some rounds.", show_default=False),
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
    billing_mode: Optional[str] = typer.Option(None, "--billing-mode", help=one_of(BILLING_MODES) + ".", show_default=False),
    safe_content_filter: Optional[bool] = typer.Option(None, "--safe-content-filter/--no-safe-content-filter", help="Turn the API's safe-content filter on or off (server default when not given).", show_default=False),
    response_format: Optional[str] = typer.Option(None, "--response-format", help="json, text, or a JSON Schema FILE.", show_default=False),
    stream: bool = typer.Option(True, "--stream/--no-stream", help="Stream the reply as it is written."),
    show_thinking: bool = typer.Option(False, "--show-thinking", help="Show reasoning on stderr."),
    image: Optional[List[str]] = typer.Option(None, "-i", "--image", help="Image for vision input (PATH or -; repeatable, up to 20).", show_default=False),
    tools: Optional[str] = typer.Option(None, "--tools", help="Sogni tools: " + one_of(TOOLS_MODES) + ".", show_default=False),
    no_exec: bool = typer.Option(False, "--no-exec", help="Return tool calls instead of running them (hosted or local)."),
    tool_choice: Optional[str] = typer.Option(None, "--tool-choice", help=one_of(TOOL_CHOICES) + " | NAME.", show_default=False),
    function: Optional[List[Path]] = typer.Option(None, "--function", help="Custom function tool from a YAML/JSON FILE (repeatable).", show_default=False),
    max_rounds: int = typer.Option(5, "--max-rounds", help="Rounds of local function calls before giving up."),
    approve_tools: bool = typer.Option(False, "--approve-tools", help="Ask before each local command (needs a terminal)."),
    read_stdin: bool = typer.Option(False, "--stdin", help="Read standard input and put it before the prompt."),
    no_stdin: bool = typer.Option(False, "--no-stdin", help="Never read standard input."),
    output_dir: Optional[Path] = typer.Option(None, "-o", "--output-dir", help="Folder for media made by hosted tools.", show_default=False),
    name: Optional[str] = typer.Option(None, "--name", help="File name template for saved media.", show_default=False),
    on_exists: str = typer.Option("suffix", "--on-exists", help=one_of(ON_EXISTS) + "."),
    no_download: bool = typer.Option(False, "--no-download", help="List media URLs on stderr instead of saving."),
    concurrency: Optional[int] = typer.Option(None, "--concurrency", metavar="N", help="Media files downloaded at once [default 16].", show_default=False),
    as_json: bool = typer.Option(False, "--json", help="Print the final completion (plus \"artifacts\") as JSON."),
    jsonl: bool = typer.Option(False, "--jsonl", help="Print one JSON event per line as things happen."),
    durable: bool = typer.Option(False, "--durable", help="Run it as a durable chat run (survives dropped connections; see `sogni run`)."),
    detach: bool = typer.Option(False, "--detach", help="With --durable: print the run id and exit once it is started."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the request instead of sending it."),
    approve_up_to: Optional[str] = typer.Option(None, "--approve-up-to", metavar="UNITS", help="Approve a cost a hosted workflow waits for when its preview is at most UNITS.", show_default=False),
    cont: bool = typer.Option(False, "-c", "--continue", help="Continue the latest logged conversation."),
    cid: Optional[str] = typer.Option(None, "--cid", help="Continue the logged conversation with this id.", show_default=False),
    preset: Optional[str] = typer.Option(None, "--preset", help="Apply a saved preset (see `sogni preset`); flags still win.", show_default=False),
    no_log: bool = typer.Option(False, "--no-log", help="Do not write this chat to the log."),
    render: Optional[bool] = typer.Option(None, "--render/--raw", help="Show the reply as Markdown (default: on a terminal).", show_default=False),
) -> None:
    """One chat completion, streamed to stdout."""
    from ..api.chat import ChatRequest, ChatResult, load_functions, load_messages, response_format_from, run_chat
    from ..core.units import parse_units

    if as_json and jsonl:
        raise UsageError("--json and --jsonl cannot be used together.")
    if concurrency is not None and concurrency < 1:
        raise UsageError(f"--concurrency must be at least 1, got {concurrency}.")
    if read_stdin and no_stdin:
        raise UsageError("--stdin and --no-stdin cannot be used together.")
    up_to = parse_units(approve_up_to, "--approve-up-to")
    if on_exists not in ON_EXISTS:
        raise UsageError(f"Invalid --on-exists {on_exists!r}: one of {', '.join(ON_EXISTS)}.")
    images = list(image or [])
    readers = images.count("-") + (messages == "-") + (prompt == "-") + read_stdin
    if readers > 1:
        raise UsageError("Only one of -i -, --messages -, --stdin and the prompt - can read standard input.")
    if no_stdin and readers:
        raise UsageError("--no-stdin, but standard input was asked for (-).")
    if approve_tools and (readers or not stdin_is_tty()):
        raise UsageError("--approve-tools asks on the terminal, and standard input is not one.",
                         hint="Run it from a terminal, or leave out --approve-tools (check the function files first).")

    # Prompt. Piped text (a pipe, or a file given with `<`) is read too and goes before the prompt; a terminal,
    # /dev/null or a socket is not read, and neither is a file that another reader is already part-way through
    # (`while read x; do sogni chat "…$x"; done < list`: the loop owns the list). --stdin reads whatever is
    # there; --no-stdin never reads.
    text = prompt
    if prompt == "-":
        text = _read_stdin_text()
    elif read_stdin or (not readers and not no_stdin and stdin_has_text(sys.stdin)):
        piped = _read_stdin_text()
        if piped.strip():
            text = f"{piped.rstrip()}\n\n{prompt}" if prompt else piped
        elif prompt is None:
            text = None
    if prompt == "" or (text is not None and not text.strip() and not images):
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
        stream=stream, max_rounds=max_rounds, billing_mode=billing_mode, safe_content_filter=safe_content_filter,
    )
    from ._memory import prepare_chat

    mem = prepare_chat(ctx, s, req, cont=cont, cid=cid, preset=preset, no_log=no_log, messages=messages,
                       show_thinking=show_thinking, render=render)
    # Validate cheap things first, before reading any file.
    from ..api.chat import validate_request

    validate_request(req)
    if len(images) > 20:
        raise UsageError(f"Too many images ({len(images)}): at most 20 per request.")
    if save_messages is not None:
        check_save_target(save_messages)
    if messages:
        req.messages = load_messages(messages, sys.stdin)
    if response_format:
        req.response_format = response_format_from(response_format)
    for f in function or []:
        req.functions.extend(load_functions(str(f)))
    from ..api.chat_tools import check_functions

    check_functions(req.functions)
    if images:
        from ..media.inputs import prepare_vision_images

        req.images = [v.data_uri for v in prepare_vision_images(images, stdin=sys.stdin.buffer if "-" in images else None)]
    if (cont or cid) and text is None and not req.images:
        raise UsageError("-c/--cid continues a conversation with something new to say: give a prompt.",
                         hint='sogni chat -c "and then?"')
    from ..api.chat import initial_messages

    initial_messages(req)  # nothing to send, or no user message: refused here, before anything is sent

    if output_dir is not None:
        from ..jobs.pipeline import check_output_paths

        check_output_paths(output_dir)
    if detach and not durable:
        raise UsageError("--detach needs --durable (only durable runs go on without this process).")
    api = client(ctx, dry_run=dry_run)
    if durable:
        from ..core import history
        from ._durable import RunOutput, start_durable

        if not detach:  # a followed run is logged like any chat (its reply arrives through the same events)
            history.track(mem.entry, s, no_log)

        start_durable(ctx, api, req, RunOutput(
            mode="json" if as_json else "jsonl" if jsonl else "text", show_thinking=show_thinking,
            output_dir=output_dir, name=name, on_exists=on_exists, no_download=no_download,
            save_messages=save_messages, approve_up_to=up_to, tap=None if detach else mem.entry.tee), detach=detach, quiet=s.quiet, dry_run=s.dry_run,
            prompt=text)
        return
    from ..render.chat_view import ChatView

    view = ChatView(mode="json" if as_json else "jsonl" if jsonl else "text", show_thinking=show_thinking,
                    quiet=s.quiet)
    view = mem.view(view)
    result = ChatResult()
    try:
        run_chat(api, req, on_event=view.handle, result=result,
                 command_timeout=s.read_timeout if s.timeout_set else None,
                 approve=_ask_before_running if approve_tools else None)
    except (SogniError, KeyboardInterrupt) as exc:
        view.close()
        if save_messages is not None and len(result.messages) > len(initial_messages(req)):
            why = exc.message if isinstance(exc, SogniError) else "interrupted"
            write_conversation(save_messages, result.messages, incomplete=why)
        raise
    finally:
        view.close()
    if result.finish_reason == "length":
        warn("the reply was cut short at the token limit (finish reason: length); raise --max-tokens for more.")

    # Hosted media.
    from ..api.hosted import find_media

    media = find_media(result.extras, result.text, hosted_call_seen=bool(result.hosted_calls))
    saved_paths: list[str] = []
    skipped: list[dict] = []
    exit_code = 0
    if media:
        from ..jobs.chat_media import save_hosted_media
        from ..render.progress import make_progress
        from ._media import approver

        no_fetch = "--tools none" if tools == "none" else "--no-exec" if no_exec else None
        report = save_hosted_media(
            api, media, prompt=text, output_dir=s.out_dir(output_dir), name=name, on_exists=on_exists,
            no_download=no_download, quiet=s.quiet, emit=view.handle, concurrency=concurrency,
            progress_factory=lambda: make_progress(sys.stderr, quiet=s.quiet),
            no_fetch=no_fetch, media_hosts=s.default("media_hosts"), approve=approver(up_to),
        )
        saved_paths = report.paths
        skipped = report.skipped
        exit_code = report.exit_code
    mem.finish(result, req, quiet=s.quiet)
    if save_messages is not None:
        write_conversation(save_messages, result.messages)
    if as_json:
        doc = dict(result.completion)
        doc["artifacts"] = saved_paths
        mem.annotate(doc)
        if skipped:
            doc["not_downloaded"] = skipped
        out_json(doc)
    view.finish()
    if result.pending_calls and not as_json and not jsonl:
        for call in result.pending_calls:
            out_jsonl({"id": call.id, "name": call.name, "arguments": call.arguments})
    if exit_code:
        raise typer.Exit(exit_code)


def _ask_before_running(fn, call) -> bool:
    """--approve-tools: show the command and its arguments on the terminal; run it only on "y"."""
    import json

    from ..core.term import shown

    args = call.arguments if isinstance(call.arguments, str) else json.dumps(call.arguments, ensure_ascii=False)
    sys.stderr.write(f"Run {shown(fn.name)}: {shown(' '.join(fn.command or []))}\n"
                     f"  with arguments {shown(args[:500])}? [y/N] ")
    sys.stderr.flush()
    answer = sys.stdin.readline()
    return answer.strip().lower() in ("y", "yes")


def stdin_has_text(stream: Any) -> bool:
    """Standard input is piped text: a pipe, or a regular file not yet read by anyone (offset 0). Streams
    without a descriptor (embedding, test runners) count as piped."""
    import os
    import stat

    if stream is None:
        return False
    try:
        fd = stream.fileno()
    except (AttributeError, OSError, ValueError):
        return True
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISFIFO(mode):
            return True
        if stat.S_ISREG(mode):
            return os.lseek(fd, 0, os.SEEK_CUR) == 0
    except OSError:
        return False
    return False


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


def check_save_target(path: Path) -> None:
    """--save-messages FILE, checked before anything is sent: a new name or a writable regular file, in a folder
    that can be written (never a symbolic link, a device, a folder or standard output)."""
    import os
    import stat

    if str(path) == "-":
        raise UsageError("--save-messages - is not supported: the conversation is written to a file.",
                         hint="Give a file name, e.g. --save-messages convo.json")
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        st = None
    except OSError as exc:
        raise UsageError(f"Cannot use --save-messages {path}: {exc.strerror or exc}") from None
    if st is not None:
        if stat.S_ISLNK(st.st_mode):
            raise UsageError(f"--save-messages {path} is a symbolic link; give the file itself.")
        if stat.S_ISDIR(st.st_mode):
            raise UsageError(f"--save-messages {path} is a folder; give a file name.")
        if not stat.S_ISREG(st.st_mode):
            raise UsageError(f"--save-messages {path} is not a regular file (a device, pipe or socket).")
        if not os.access(path, os.W_OK):
            raise UsageError(f"Cannot write --save-messages {path}: permission denied.")
    folder = path.parent if str(path.parent) else Path(".")
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
        raise UsageError(f"Cannot write --save-messages {path}: the folder {folder} cannot be written.")


def write_conversation(path: Path, messages: list, *, incomplete: str | None = None) -> None:
    """The conversation as JSON. A run that failed part-way is saved as ``{"incomplete": true, "error", "messages"}``
    (``--messages`` reads that too), without a last round of tool calls that did not all get their results."""
    import json

    from ..core.filewrite import write_atomic

    data: object = messages
    if incomplete is not None:
        msgs = list(messages)
        last = msgs[-1] if msgs else None
        while last is not None and last.get("role") in ("assistant", "tool") and _unanswered(msgs):
            msgs.pop()
            last = msgs[-1] if msgs else None
        data = {"incomplete": True, "error": incomplete, "messages": msgs}
    text = json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, text)
    except OSError as exc:
        raise UsageError(f"Cannot write --save-messages {path}: {exc.strerror or exc}") from None


def _unanswered(msgs: list) -> bool:
    """The last assistant message asked for tool calls that do not all have a result after it."""
    for i in range(len(msgs) - 1, -1, -1):
        m = msgs[i]
        if m.get("role") == "assistant" and m.get("tool_calls"):
            wanted = {c.get("id") for c in m["tool_calls"] if isinstance(c, dict)}
            got = {t.get("tool_call_id") for t in msgs[i + 1:] if t.get("role") == "tool"}
            return not wanted <= got
        if m.get("role") not in ("tool",):
            return False
    return False


