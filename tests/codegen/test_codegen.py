"""``telefunc codegen``: the Python -> TypeScript type mapping, the stubs, and ``tsc`` on them."""

# No `from __future__ import annotations` here: the tests define functions whose annotations
# name local variables, which only work when evaluated at definition time.

import dataclasses
import enum
import json
import os
import re
import shutil
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import (
    Annotated,
    Any,
    Generic,
    Literal,
    NewType,
    NotRequired,
    Optional,
    TypedDict,
    TypeVar,
    Union,
)

import pytest

from telefunc import UNDEFINED, UploadedFile
from telefunc.cli import main as cli_main
from telefunc.codegen import generate, main_codegen, python_type_to_ts, render_module
from telefunc.errors import ShieldValidationError, UsageError
from telefunc.server.channel import Channel
from telefunc.server.registry import Telefunction
from telefunc.server.shield import validate_call
from telefunc.wire.serializer import BigInt, JsMap, JsRegExp, JsSet, UndefinedType

REPO = Path(__file__).resolve().parents[2]
APP = REPO / "tests" / "apps" / "codegen"
JS_MODULES = REPO / "js" / "node_modules"
TSC = JS_MODULES / "typescript" / "bin" / "tsc"

T = TypeVar("T")
UserId = NewType("UserId", int)


class Color(enum.StrEnum):
    RED = "red"
    GREEN = "green"


class Level(enum.IntEnum):
    LOW = 1
    HIGH = 2


class Perm(enum.Flag):
    READ = 1
    WRITE = 2


class Point(TypedDict):
    x: float
    y: float
    label: NotRequired[str]


class Node(TypedDict):
    """A tree node that refers to itself."""

    name: str
    children: list["Node"]
    parent: "Node | None"


class Partial(TypedDict, total=False):  # a name TypeScript already uses
    a: int


@dataclasses.dataclass
class Settings:
    theme: str
    size: int = 12
    tags: list[str] = dataclasses.field(default_factory=list)
    computed: int = dataclasses.field(default=0, init=False)


@dataclasses.dataclass
class Profile:
    """Holds Settings, so its argument form differs as well."""

    name: str
    settings: Settings


@dataclasses.dataclass
class Box(Generic[T]):
    item: T


class BroadcastStandIn(Generic[T]):
    """Looks like ``telefunc.server.broadcast.BroadcastChannel`` (which may not exist yet)."""


BroadcastStandIn.__module__ = "telefunc.server.broadcast"
BroadcastStandIn.__qualname__ = "BroadcastChannel"


@pytest.mark.parametrize(
    ("annotation", "expected"),
    [
        (str, "string"),
        (int, "number"),
        (float, "number"),
        (bool, "boolean"),
        (None, "null"),
        (type(None), "null"),
        (Any, "unknown"),
        (object, "unknown"),
        (bytes, "Uint8Array"),
        (bytearray, "Uint8Array"),
        (datetime, "Date"),
        (UndefinedType, "undefined"),
        (Literal[UNDEFINED], "undefined"),
        (BigInt, "bigint"),
        (JsRegExp, "RegExp"),
        (re.Pattern[str], "RegExp"),
        (JsMap, "Map<unknown, unknown>"),
        (JsSet, "Set<unknown>"),
        (UploadedFile, "File | Blob"),
        (UserId, "number"),
        (Annotated[str, "meta"], "string"),
        (list[int], "number[]"),
        (list[int | None], "(number | null)[]"),
        (Sequence[str], "string[]"),
        (tuple[int, ...], "number[]"),
        (tuple[int, str], "[number, string]"),
        (tuple[()], "[]"),
        (tuple, "unknown[]"),
        (set[str], "Set<string>"),
        (frozenset[int], "Set<number>"),
        (Collection[int], "number[]"),
        (dict[str, int], "Record<string, number>"),
        (Mapping[str, list[str]], "Record<string, string[]>"),
        (dict, "Record<string, unknown>"),
        (dict[int, str], "Map<number, string>"),
        (dict[tuple[int, int], str], "Map<[number, number], string>"),
        (dict[Literal["a", "b"], int], 'Partial<Record<"a" | "b", number>>'),
        (dict[Color, int], "Partial<Record<Color, number>>"),
        (dict[Level, int], "Map<Level, number>"),
        (Optional[str], "string | null"),  # noqa: UP045 - the old spelling on purpose
        (Union[int, str], "number | string"),  # noqa: UP007 - the old spelling on purpose
        (int | str | None, "number | string | null"),
        (int | float, "number"),
        (str | Any, "unknown"),
        (
            Literal["a", 'say "hi"', 1, -2, True, None],
            '"a" | "say \\"hi\\"" | 1 | -2 | true | null',
        ),
        (Literal[Color.RED], '"red"'),
        (Color, "Color"),
        (Level, "Level"),
        (Point, "Point"),
        (Node, "Node"),
        (Settings, "Settings"),
        (Box[int], "Box<number>"),
        (Box, "Box"),
        (Partial, "Partial_2"),
        (Awaitable[int], "Promise<number>"),
        (AsyncIterator[str], "AsyncGenerator<string>"),
        (Callable[[int, str], bool], "(arg0: number, arg1: string) => Promise<boolean>"),
        (Callable[[], None], "() => Promise<void>"),
        (Callable[..., int], "(...args: unknown[]) => Promise<number>"),
        (list[Callable[[int], None]], "((arg0: number) => Promise<void>)[]"),
        (Callable[[int], None] | None, "((arg0: number) => Promise<void>) | null"),
        (Channel[str, int], "ClientChannel<string, number>"),
        (Channel[Point, list[Settings]], "ClientChannel<Point, Settings[]>"),
        (Channel, "ClientChannel<unknown, unknown>"),
        (BroadcastStandIn[Point], "BroadcastChannel<Point>"),
        (T, "unknown"),
        (TypeVar("N", bound=int), "number"),
        (complex, "unknown /* no TypeScript mapping for builtins.complex */"),
    ],
)
def test_result_types(annotation: Any, expected: str) -> None:
    assert python_type_to_ts(annotation) == expected


@pytest.mark.parametrize(
    ("annotation", "expected"),
    [
        (Settings, "SettingsInput"),  # defaulted fields are optional when sent
        (Profile, "ProfileInput"),  # contains SettingsInput
        (list[Settings] | None, "SettingsInput[] | null"),
        (Point, "Point"),  # a TypedDict reads the same both ways
        (Collection[int], "number[] | Set<number>"),  # the shield accepts both
        (Callable[[Settings], int], "(arg0: Settings) => number | Promise<number>"),
        (Callable[[int], None], "(arg0: number) => void"),
        (Callable[..., Any], "(...args: any[]) => unknown"),
        (Channel[Settings, Settings], "ClientChannel<SettingsInput, Settings>"),
    ],
)
def test_argument_types(annotation: Any, expected: str) -> None:
    assert render_and_find(annotation) == expected


def render_and_find(annotation: Any) -> str:
    """The parameter type ``render_module`` writes for a one-parameter function."""

    def probe(value: annotation) -> None:
        pass

    text = render_module("/probe.telefunc.py", [Telefunction("/probe.telefunc.py", "probe", probe)])
    match = re.search(r"^export function probe\(value\??: (.*)\): Promise<void> \{$", text, re.M)
    assert match is not None, text
    return match.group(1)


def _module(*funcs: Callable[..., Any], file: str = "/m.telefunc.py") -> str:
    return render_module(file, [Telefunction(file, f.__name__, f) for f in funcs])


def test_flag_enum_is_a_number_and_int_enum_a_union() -> None:
    def f(p: Perm) -> Level:
        raise NotImplementedError

    text = _module(f)
    assert "export type Perm = number\n" in text
    assert "export type Level = 1 | 2\n" in text


def test_recursive_typeddict_is_declared_once() -> None:
    def tree(root: Node) -> Node:
        return root

    text = _module(tree)
    assert text.count("export interface Node ") == 1
    assert "  children: Node[]\n" in text
    assert "  parent: Node | null\n" in text
    assert "/** A tree node that refers to itself. */" in text


def test_dataclass_results_have_every_field_and_arguments_may_omit_defaults() -> None:
    def save(profile: Profile) -> Profile:
        return profile

    text = _module(save)
    assert "export function save(profile: ProfileInput): Promise<Profile>" in text
    settings = _declaration(text, "Settings")
    assert settings == ["theme: string", "size: number", "tags: string[]", "computed: number"]
    settings_input = _declaration(text, "SettingsInput")
    assert settings_input == ["theme: string", "size?: number", "tags?: string[]"]
    assert _declaration(text, "ProfileInput") == ["name: string", "settings: SettingsInput"]
    assert _declaration(text, "Profile") == ["name: string", "settings: Settings"]


def test_input_form_is_only_written_when_an_argument_uses_it() -> None:
    def load() -> Settings:
        raise NotImplementedError

    text = _module(load)
    assert "export interface Settings " in text
    assert "SettingsInput" not in text


def _declaration(text: str, name: str) -> list[str]:
    match = re.search(rf"^export interface {name}(?:<[^>]*>)? \{{\n(.*?)^\}}", text, re.M | re.S)
    assert match is not None, f"no interface {name} in:\n{text}"
    return [line.strip() for line in match.group(1).splitlines()]


def test_typeddict_optional_keys_and_total_false() -> None:
    def f(p: Point, q: Partial) -> None:
        pass

    text = _module(f)
    assert _declaration(text, "Point") == ["x: number", "y: number", "label?: string"]
    assert _declaration(text, "Partial_2") == ["a?: number"]
    assert "export function f(p: Point, q: Partial_2): Promise<void>" in text


def test_generic_dataclass_is_a_generic_interface() -> None:
    def f(box: Box[Point]) -> Box[int]:
        return Box(1)

    text = _module(f)
    assert _declaration(text, "Box") == ["item: T"]
    assert "export interface Box<T = unknown> {" in text
    assert "export function f(box: Box<Point>): Promise<Box<number>>" in text


def test_parameters_with_defaults_or_admitting_none_are_optional_only_at_the_end() -> None:
    def f(a: int | None, b: str, c: float = 1.0, d: str | None = None) -> None:
        pass

    def g(a: int, b: str | None, *rest: int, key: str = "k", **extra: Any) -> None:
        pass

    text = _module(f, g)
    assert "export function f(a: number | null, b: string, c?: number, d?: string | null)" in text
    assert (
        "export function g(a: number, b?: string | null, ...rest: number[]): Promise<void>" in text
    )
    assert '"g", [a, b, ...rest]) as Promise<void>' in text


def test_an_argument_is_optional_exactly_when_the_shield_lets_the_client_leave_it_out() -> None:
    # Codegen and the shield share hints.admits_none: a stub never marks optional an argument
    # the server would refuse to see missing, and never requires one it would accept missing.
    def f(a: int | UndefinedType, b: Annotated[int | None, "note"]) -> None:
        pass

    assert "export function f(a: number | undefined, b?: number | null)" in _module(f)
    assert validate_call(f, [1]) == ([1, None], {})
    with pytest.raises(ShieldValidationError, match=r"argument 1 \(a\): missing"):
        validate_call(f, [])


def test_return_none_is_void_and_coroutines_are_unwrapped() -> None:
    async def a() -> None:
        pass

    def b() -> Awaitable[list[int]]:
        raise NotImplementedError

    async def c() -> str | None:
        return None

    def d():  # type: ignore[no-untyped-def]  # unannotated on purpose
        pass

    text = _module(a, b, c, d)
    assert "export function a(): Promise<void>" in text
    assert "export function b(): Promise<number[]>" in text
    assert "export function c(): Promise<string | null>" in text
    assert "export function d(): Promise<unknown>" in text


def test_reserved_words_are_renamed_locally_and_exported_under_the_python_name() -> None:
    def delete(new: str, this: int) -> None:
        pass

    text = _module(delete)
    assert "function delete_(new_: string, this_: number): Promise<void> {" in text
    assert '__remoteTelefunctionCall("/m.telefunc.py", "delete", [new_, this_])' in text
    assert "export { delete_ as delete }" in text


def test_classes_with_the_same_name_get_distinct_names() -> None:
    # The functional syntax, because two of them must share one name.
    make: Any = TypedDict
    first = make("Item", {"a": int})
    second = make("Item", {"b": str})
    file_class = make("File", {"c": bool})

    def f(x: Any, y: Any, z: Any, u: UploadedFile) -> None:
        pass

    f.__annotations__.update(x=first, y=second, z=file_class)

    text = _module(f)
    assert "export function f(x: Item, y: Item_2, z: File_2, u: File | Blob)" in text
    assert _declaration(text, "Item") == ["a: number"]
    assert _declaration(text, "Item_2") == ["b: string"]
    assert _declaration(text, "File_2") == ["c: boolean"]


def test_channel_types_are_imported_from_the_telefunc_package_as_types() -> None:
    def f() -> Channel[str, int]:
        raise NotImplementedError

    def g() -> int:
        return 1

    text = _module(f)
    assert "import type { ClientChannel } from 'telefunc'\n" in text
    assert "import { __remoteTelefunctionCall } from 'telefunc/client'\n" in text
    assert "from 'telefunc'" not in _module(g)


def test_unresolvable_annotation_is_a_usage_error() -> None:
    def f(x: "DoesNotExist") -> None:  # type: ignore[name-defined]  # noqa: F821
        pass

    with pytest.raises(UsageError, match=r"/m\.telefunc\.py: f\(\): cannot resolve"):
        _module(f)


def test_render_module_rejects_a_function_of_another_file() -> None:
    def f() -> None:
        pass

    with pytest.raises(UsageError, match="not a telefunction of"):
        render_module("/a.telefunc.py", [Telefunction("/b.telefunc.py", "f", f)])


# ---------------------------------------------------------------------------------------------
# generate() on the fixture app
# ---------------------------------------------------------------------------------------------


def test_generate_writes_one_stub_per_telefunc_file(tmp_path: Path) -> None:
    written = generate(APP, tmp_path / "out")
    assert written == [
        tmp_path / "out" / "chat" / "room.telefunc.ts",
        tmp_path / "out" / "util.telefunc.ts",
    ]
    room = written[0].read_text()
    assert room.startswith("// Generated by `telefunc codegen` from chat/room.telefunc.py.")
    assert "import type { BroadcastChannel, ClientChannel } from 'telefunc'\n" in room
    assert (
        "export function last_messages(room: string, limit?: number): Promise<Message[]> {\n"
        '  return __remoteTelefunctionCall("/chat/room.telefunc.py", "last_messages", '
        "[room, limit]) as Promise<Message[]>\n}\n"
    ) in room
    assert " * The last messages of a room, oldest first.\n" in room
    # Literal alias inlined, NotRequired key optional, the self-reference kept by name.
    assert _declaration(room, "Message") == [
        "id: number",
        "author: string",
        "text: string",
        'mood?: "happy" | "sad" | "say \\"hi\\""',
        "reply_to: Message | null",
    ]
    assert (
        "export function join(room: RoomInput, invite?: InviteInput | null): Promise<Room>" in room
    )
    assert _declaration(room, "RoomInput") == [
        "name: string",
        "topic?: string | null",
        "members?: string[]",
        "color?: Color",
    ]
    assert 'export type Color = "red" | "green"' in room
    assert "Promise<ClientChannel<string | Typing, Message>>" in room
    assert "Promise<BroadcastChannel<Message>>" in room
    assert "export function leave(room: string): Promise<void>" in room
    assert "Promise<Partial<Record<Color, number>>>" in room
    assert "_private" not in written[1].read_text()


def test_generate_on_a_missing_root_raises(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="is not a folder"):
        generate(tmp_path / "nope", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_main_codegen_prints_what_it_wrote(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main_codegen(str(APP), str(tmp_path)) == 0
    out = capsys.readouterr().out
    assert f"wrote {tmp_path / 'chat' / 'room.telefunc.ts'}" in out
    assert f"wrote {tmp_path / 'util.telefunc.ts'}" in out


@pytest.mark.parametrize(
    ("root", "message"),
    [
        ("tests/apps/does-not-exist", "is not a folder"),
        ("tests/apps/empty", "no telefunctions found"),
        ("tests/apps/broken", "bad.telefunc.py line"),
    ],
)
def test_main_codegen_reports_problems_on_one_line(
    root: str, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main_codegen(str(REPO / root), str(tmp_path / "out")) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("telefunc codegen: error: ")
    assert message in captured.err
    assert captured.err.count("\n") == 1


def test_cli_runs_codegen(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["codegen", str(APP), "--out", str(tmp_path)]) == 0
    assert (tmp_path / "util.telefunc.ts").is_file()
    assert "wrote" in capsys.readouterr().out


# ---------------------------------------------------------------------------------------------
# The TypeScript compiler on the stubs
# ---------------------------------------------------------------------------------------------

USAGE_TS = """\
import {
  last_messages, post, join, rooms, connect, subscribe, leave, paint,
} from './gen/chat/room.telefunc'
import type { Message, Room } from './gen/chat/room.telefunc'
import * as util from './gen/util.telefunc'

export async function main(): Promise<void> {
  const messages: Message[] = await last_messages('lobby')
  const posted: Message = await post('lobby', 'hi', 'happy')
  const invite = { room: { name: 'x', color: 'green' as const }, note: 'n' }
  const room: Room = await join({ name: 'lobby' }, invite)
  const members: string[] = room.members
  const page = await rooms(1)
  const first: Room | undefined = page.items[0]
  const channel = await connect('bob')
  channel.listen((msg) => { const text: string = msg.text; void text })
  await channel.send({ user: 'bob', typing: true })
  await channel.send('hello')
  const broadcast = await subscribe('lobby')
  broadcast.subscribe((msg, info) => { const seq: number = info.seq; void [seq, msg.author] })
  const nothing: void = await leave('lobby')
  const counts = await paint('red', 'door')
  const red: number | undefined = counts.red
  const sum: number = await util.add(1)
  const [a, b, c]: [number, string, boolean] = await util.lookup(new Map([[1, 'a']]), new Date())
  const bytes: Uint8Array | null = await util.blob(new Uint8Array([1]), null)
  await util.upload(new File(['x'], 'x.txt'), 'tag1', 'tag2')
  await util.delete('x')
  await util.maybe()
  for await (const tick of await util.ticker(3)) { const t: number = tick; void t }
  const callback = await util.on_tick(async (i) => i > 2, 1)
  await callback('x')
  const tree = await util.tree()
  const label: string | undefined = tree.children?.[0]?.label
  // @ts-expect-error limit is a number
  await last_messages('lobby', '50')
  // @ts-expect-error a Room returned by Python always has all of its fields
  const partial: Room = { name: 'x' }
  // @ts-expect-error 'angry' is not a Mood
  await post('lobby', 'hi', 'angry')
  // @ts-expect-error a ClientToServer message must be a string or a Typing
  await channel.send(42)
  // @ts-expect-error Priority is 1 | 2
  await util.on_tick(() => true, 3)
  void [messages, posted, members, first, nothing, red, sum, a, b, c, bytes, label, partial]
}
"""

# A deliberate error without `@ts-expect-error`: tsc must reject it (proves it checks the stubs).
BAD_TS = """\
import { add } from './gen/util.telefunc'
export const x: Promise<string> = add(1, 2)
"""


def _tsc_or_skip() -> str:
    node = shutil.which("node")
    missing = []
    if node is None:
        missing.append("node is not on PATH")
    if not TSC.is_file() or not (JS_MODULES / "telefunc" / "package.json").is_file():
        missing.append(f"{JS_MODULES} lacks typescript or telefunc (run npm ci in js/)")
    if missing:
        reason = "; ".join(missing)
        if os.environ.get("CI"):
            pytest.fail(f"tsc check cannot run in CI: {reason}")
        pytest.skip(reason)
    assert node is not None
    return node


def _tsc(node: str, project: Path, files: list[str]) -> subprocess.CompletedProcess[str]:
    options: dict[str, Any] = {
        "target": "es2022",
        "module": "esnext",
        "moduleResolution": "bundler",
        "lib": ["es2022", "dom", "dom.iterable", "dom.asynciterable"],
        "isolatedModules": True,
        "verbatimModuleSyntax": True,
    }
    if (JS_MODULES / "@types" / "node").is_dir():
        options["types"] = ["node"]
    else:
        # The `telefunc` package root (where ClientChannel/BroadcastChannel types live) imports
        # `node:stream` types; without @types/node, stand in for the two names it uses.
        options["types"] = []
        (project / "node-stream.d.ts").write_text(
            "declare module 'node:stream' {\n"
            "  export class Readable {}\n"
            "  export class Writable {}\n"
            "}\n"
        )
        files = [*files, "node-stream.d.ts"]
    (project / "tsconfig.json").write_text(
        json.dumps({"compilerOptions": options, "files": files}, indent=2)
    )
    return subprocess.run(
        [node, str(TSC), "--noEmit", "--strict", "--skipLibCheck", "false", "-p", str(project)],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_tsc_accepts_the_stubs_and_their_types_bite(tmp_path: Path) -> None:
    node = _tsc_or_skip()
    # `telefunc/client` and `telefunc` resolve through node_modules like in a real project.
    (tmp_path / "node_modules").symlink_to(JS_MODULES, target_is_directory=True)
    generate(APP, tmp_path / "gen")
    (tmp_path / "usage.ts").write_text(USAGE_TS)
    stubs = ["gen/chat/room.telefunc.ts", "gen/util.telefunc.ts"]
    result = _tsc(node, tmp_path, [*stubs, "usage.ts"])
    assert result.returncode == 0, result.stdout + result.stderr

    (tmp_path / "bad.ts").write_text(BAD_TS)
    result = _tsc(node, tmp_path, [*stubs, "bad.ts"])
    assert result.returncode != 0
    assert "bad.ts(2," in result.stdout and "TS2322" in result.stdout, result.stdout
