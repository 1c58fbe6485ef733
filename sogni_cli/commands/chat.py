"""`sogni chat`: its options, as the command-line framework shows and parses them.

What the command does is in :mod:`sogni_cli.commands.chat_body`."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from ..core.choices import BILLING_MODES, ON_EXISTS, TASK_PROFILES, TOKEN_TYPES, TOOL_CHOICES, TOOLS_MODES, one_of
from ._common import make_app

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
    params = dict(locals())
    del params["ctx"]
    from .chat_body import run

    run(ctx, **params)
