"""The PowerShell completion engine and its renderer."""

from __future__ import annotations

from .model import Node, Opt, Spec
from .common import Dialect, fill, header, option_keys

__all__ = ["TEMPLATE", "render"]

TEMPLATE = r"""
Register-ArgumentCompleter -Native -CommandName 'sogni' -ScriptBlock {
    param($wordToComplete, $commandAst, $cursorPosition)

    # Items are 'NAME DESCRIPTION': names never hold spaces.
    function SogniSubcommands([string]$node) {
        switch -Exact -CaseSensitive ($node) {
@@SUBS@@
        }
        return @()
    }

    function SogniOptions([string]$node) {
        switch -Exact -CaseSensitive ($node) {
@@OPTS@@
        }
        return @()
    }

    # The kind of value an option of a command takes; empty for a flag.
    function SogniOptionKind([string]$node, [string]$option) {
        switch -Exact -CaseSensitive ("$node|$option") {
@@KINDS@@
        }
        return ''
    }

    # The kind of the positional argument number $index (from 0) of command $node.
    function SogniArgKind([string]$node, [int]$index) {
        $kinds = @()
        $variadic = $false
        switch -Exact -CaseSensitive ($node) {
@@ARGS@@
        }
        if ($index -lt $kinds.Count) { return $kinds[$index] }
        if ($variadic -and $kinds.Count -gt 0) { return $kinds[-1] }
        return ''
    }

    function SogniValues([string]$kind, [string]$word) {
        if ($kind -eq 'file' -or $kind -eq 'dir') {
            $found = @([System.Management.Automation.CompletionCompleters]::CompleteFilename($word))
            if ($kind -eq 'dir') { $found = @($found | Where-Object { $_.ResultType -eq 'ProviderContainer' }) }
            return $found
        }
        $values = @()
        if ($kind -eq 'model' -or $kind -eq 'lora') {
            $dir = $env:SOGNI_CONFIG_DIR
            if (-not $dir) {
                if ($IsMacOS) { $dir = Join-Path $HOME 'Library/Application Support/sogni' }
                elseif ($env:APPDATA) { $dir = Join-Path $env:APPDATA 'sogni' }
                elseif ($env:XDG_CONFIG_HOME) { $dir = Join-Path $env:XDG_CONFIG_HOME 'sogni' }
                else { $dir = Join-Path $HOME '.config/sogni' }
            }
            $file = Join-Path $dir ($kind + 's-cache.txt')
            if (Test-Path -LiteralPath $file -PathType Leaf) {
                $values = @(Get-Content -LiteralPath $file | ForEach-Object { $_.Trim() } | Where-Object { $_ })
            }
        } elseif ($kind -eq 'tool') {
            $values = @(@@TOOLS@@)
        } elseif ($kind.StartsWith('choice:')) {
            $values = @($kind.Substring(7) -split ' ')
        }
        foreach ($value in $values) {
            if ($value.StartsWith($word, [System.StringComparison]::OrdinalIgnoreCase)) {
                [System.Management.Automation.CompletionResult]::new($value, $value, 'ParameterValue', $value)
            }
        }
    }

    $words = @($commandAst.CommandElements |
        Where-Object { $_.Extent.EndOffset -lt $cursorPosition } |
        ForEach-Object { $_.Extent.Text })
    $node = 'sogni'
    $npos = 0
    $ddash = $false
    $i = 1
    while ($i -lt $words.Count) {
        $w = [string]$words[$i]
        if (-not $ddash -and $w -ceq '--') {
            $ddash = $true
        } elseif (-not $ddash -and $w.Length -gt 1 -and $w.StartsWith('-')) {
            if (-not $w.Contains('=')) {
                $kind = SogniOptionKind $node $w
                if ($kind) {
                    if ($i + 1 -ge $words.Count) { return SogniValues $kind $wordToComplete }
                    $i++
                }
            }
        } else {
            $subs = @(SogniSubcommands $node | ForEach-Object { ($_ -split ' ', 2)[0] })
            if ($npos -eq 0 -and $subs -ccontains $w) { $node = "$node $w" } else { $npos++ }
        }
        $i++
    }

    $word = [string]$wordToComplete
    if (-not $ddash -and $word -match '^(--[^=]+)=(.*)$') {
        $opt = $Matches[1]
        $rest = $Matches[2]
        $kind = SogniOptionKind $node $opt
        if ($kind) {
            foreach ($r in @(SogniValues $kind $rest)) {
                $text = "$opt=" + $r.CompletionText
                [System.Management.Automation.CompletionResult]::new($text, $r.ListItemText, 'ParameterValue', $r.ToolTip)
            }
            return
        }
    }
    if (-not $ddash -and $word.StartsWith('-')) {
        foreach ($item in @(SogniOptions $node)) {
            $name, $desc = $item -split ' ', 2
            if ($name.StartsWith($word, [System.StringComparison]::Ordinal)) {
                [System.Management.Automation.CompletionResult]::new($name, $name, 'ParameterName', $desc)
            }
        }
        return
    }
    $subs = @(SogniSubcommands $node)
    if ($npos -eq 0 -and $subs.Count -gt 0) {
        foreach ($item in $subs) {
            $name, $desc = $item -split ' ', 2
            if ($name.StartsWith($word, [System.StringComparison]::OrdinalIgnoreCase)) {
                [System.Management.Automation.CompletionResult]::new($name, $name, 'Command', $desc)
            }
        }
        return
    }
    SogniValues (SogniArgKind $node $npos) $word
}
"""


def _pq(text: str) -> str:
    """Single-quoted for PowerShell."""
    return "'" + text.replace("'", "''") + "'"


def _words(node: Node, pairs: list[tuple[str, str]]) -> str:
    """'NAME DESCRIPTION' items: names never hold spaces, so the first space splits them."""
    items = ",\n                ".join(_pq(f"{name} {help_ or name}") for name, help_ in pairs)
    return f"            {_pq(node.key)} {{ return @(\n                {items}) }}"


def _kind(node: Node, opt: Opt) -> str:
    # switch -Exact takes one value per clause: a clause per spelling.
    return "\n".join(f"            {_pq(k)} {{ return {_pq(opt.kind)} }}" for k in option_keys(node, opt))


def _args(node: Node) -> str:
    values = ", ".join(_pq(k) for k in node.args)
    variadic = "$true" if node.variadic else "$false"
    return f"            {_pq(node.key)} {{ $kinds = @({values}); $variadic = {variadic} }}"


_DIALECT = Dialect(TEMPLATE, _words, _kind, _args, tools=lambda tools: ", ".join(_pq(t) for t in tools))


def render(spec: Spec) -> str:
    """The PowerShell completion script (a Register-ArgumentCompleter block)."""
    return header("powershell", spec, "PowerShell") + fill(_DIALECT, spec)
