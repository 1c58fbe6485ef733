"""What `sogni chat` does once its options are parsed: read the prompt, build the request, stream the reply,
save hosted media, log the conversation.

It does not import the command-line framework: the command's options are declared in
:mod:`sogni_cli.commands.chat`, and :mod:`sogni_cli.fastlane` calls :func:`run` directly for the usual
command lines, so the first token is not kept waiting for the framework to load.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, List, Optional

from ..core.choices import ON_EXISTS
from ..core.errors import ExitStatus, SogniError, UsageError
from ..core.term import stdin_is_tty, warn
from ..render.output import out_json, out_jsonl
from ._common import client, settings


def template_kwargs(items: List[str]) -> dict:
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


def run(
    ctx: Any,
    prompt: Optional[str] = None,
    model: Optional[str] = None,
    system: Optional[str] = None,
    developer: Optional[str] = None,
    messages: Optional[str] = None,
    save_messages: Optional[Path] = None,
    max_tokens: Optional[int] = None,
    temperature: Optional[float] = None,
    top_p: Optional[float] = None,
    top_k: Optional[int] = None,
    min_p: Optional[float] = None,
    repetition_penalty: Optional[float] = None,
    frequency_penalty: Optional[float] = None,
    presence_penalty: Optional[float] = None,
    stop: Optional[List[str]] = None,
    task_profile: Optional[str] = None,
    think: Optional[bool] = None,
    template_kwarg: Optional[List[str]] = None,
    token_type: Optional[str] = None,
    billing_mode: Optional[str] = None,
    safe_content_filter: Optional[bool] = None,
    response_format: Optional[str] = None,
    stream: bool = True,
    show_thinking: bool = False,
    image: Optional[List[str]] = None,
    tools: Optional[str] = None,
    no_exec: bool = False,
    tool_choice: Optional[str] = None,
    function: Optional[List[Path]] = None,
    max_rounds: int = 5,
    approve_tools: bool = False,
    read_stdin: bool = False,
    no_stdin: bool = False,
    output_dir: Optional[Path] = None,
    name: Optional[str] = None,
    on_exists: str = "suffix",
    no_download: bool = False,
    concurrency: Optional[int] = None,
    as_json: bool = False,
    jsonl: bool = False,
    durable: bool = False,
    detach: bool = False,
    dry_run: bool = False,
    approve_up_to: Optional[str] = None,
    cont: bool = False,
    cid: Optional[str] = None,
    preset: Optional[str] = None,
    no_log: bool = False,
    render: Optional[bool] = None,
) -> None:
    """One chat completion, streamed to stdout. ``ctx`` is the command's context: the root's global options
    (``ctx.find_root().obj``), clean-ups (``call_on_close``) and where each value came from
    (``get_parameter_source``)."""
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
        think=think, template_kwargs=template_kwargs(template_kwarg or []),
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
        raise ExitStatus(exit_code)


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


