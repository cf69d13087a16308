"""kumo.fs.read_dir / kumo.read_dir, kumo.fs.metadata_for_path,
kumo.fs.symlink_metadata_for_path and kumo.fs.open, from a Lua policy on real files."""

from __future__ import annotations

import os
from pathlib import Path

from .support import Recorder, load, make_runtime


async def test_lua_read_dir_lists_joined_paths_under_both_names(tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "sub").mkdir(parents=True)
    (data / "a.txt").write_text("a")
    recorder = Recorder()
    await load(tmp_path, f"""\
        local kumo = require 'kumo'
        local names = kumo.fs.read_dir '{data}'
        table.sort(names)
        kumo.test.mark(names)
        kumo.test.mark(#kumo.read_dir '{data}/')
        kumo.test.mark({{ pcall(kumo.fs.read_dir, '{data}/missing') }})
        kumo.test.mark({{ pcall(kumo.read_dir, '{data}/a.txt') }})
    """, recorder=recorder)
    assert recorder.marks[:2] == [[f"{data}/a.txt", f"{data}/sub"], 2]
    errors = [str(error) for ok, error in recorder.marks[2:] if not ok]
    assert errors == [
        "kumo.fs.read_dir: No such file or directory (os error 2)",
        "kumo.read_dir: Not a directory (os error 20)",
    ]


async def test_lua_metadata_follows_links_and_symlink_metadata_does_not(tmp_path: Path) -> None:
    target = tmp_path / "target.txt"
    target.write_bytes(b"hello world")
    link = tmp_path / "link.txt"
    link.symlink_to(target)
    os.utime(target, (1_700_000_000, 1_700_000_000))
    recorder = Recorder()
    await load(tmp_path, f"""\
        local kumo = require 'kumo'
        local m = kumo.fs.metadata_for_path '{link}'
        kumo.test.mark({{ m.path, m.is_file, m.is_dir, m.is_symlink, m.len, m.size,
                          m.readonly, m.nlink, m.mtime.rfc2822, m.mtime.unix_timestamp }})
        kumo.test.mark({{ m.ino > 0, m.dev > 0, m.mode > 0, m.blksize > 0, m.uid, m.gid,
                          m.atime.unix_timestamp, m.ctime.unix_timestamp > 0 }})
        local s = kumo.fs.symlink_metadata_for_path '{link}'
        kumo.test.mark({{ s.is_file, s.is_dir, s.is_symlink }})
        local d = kumo.fs.metadata_for_path '{tmp_path}'
        kumo.test.mark({{ d.is_file, d.is_dir, d.len > 0 }})
        local ok, err = pcall(kumo.fs.metadata_for_path, 'this/path/does/not/exist')
        kumo.test.mark({{ ok, tostring(err) }})
    """, recorder=recorder)
    info = target.stat()
    assert recorder.marks == [
        [str(link), True, False, False, 11, 11, False, 1, "Tue, 14 Nov 2023 22:13:20 +0000",
         1_700_000_000],
        [True, True, True, True, info.st_uid, info.st_gid, 1_700_000_000, True],
        [False, False, True],
        [False, True, True],
        [False, "kumo.fs.metadata_for_path: No such file or directory (os error 2)"],
    ]


async def test_lua_metadata_readonly_means_no_write_bit(tmp_path: Path) -> None:
    path = tmp_path / "ro.txt"
    path.write_text("x")
    path.chmod(0o444)
    recorder = Recorder()
    await load(tmp_path, f"""\
        local kumo = require 'kumo'
        kumo.test.mark(kumo.fs.metadata_for_path('{path}').readonly)
    """, recorder=recorder)
    assert recorder.marks == [True]


async def test_lua_open_reads_writes_seeks_binary_data(tmp_path: Path) -> None:
    path = tmp_path / "f.bin"
    recorder = Recorder()
    await load(tmp_path, f"""\
        local kumo = require 'kumo'
        local f = kumo.fs.open('{path}', 'w+')
        f:write 'hello there'
        f:write '\\xff\\x00\\xfe'
        f:flush()
        kumo.test.mark(f:seek 'set')
        kumo.test.mark(f:read(5))
        kumo.test.mark(f:seek())
        kumo.test.mark(#f:read())
        kumo.test.mark(f:seek 'end')
        kumo.test.mark(f:seek(-3, 'end'))
        kumo.test.mark(f:read() == '\\xff\\x00\\xfe')
        kumo.test.mark(f:read(10))
        f:close()
        f:close()
        kumo.test.mark(kumo.fs.open('{path}'):read(5))
    """, recorder=recorder)
    assert recorder.marks == [0, "hello", 5, 9, 14, 11, True, "", "hello"]
    assert path.read_bytes() == b"hello there\xff\x00\xfe"


async def test_lua_open_modes_follow_kumomta(tmp_path: Path) -> None:
    path = tmp_path / "f.txt"
    path.write_text("0123456789")
    recorder = Recorder()
    await load(tmp_path, f"""\
        local kumo = require 'kumo'
        local w = kumo.fs.open('{path}', 'wb')  -- KumoMTA's 'w' does not truncate
        w:write 'ab'
        w:close()
        local a = kumo.fs.open('{path}', 'a+')
        a:write 'Z'
        a:seek 'set'
        kumo.test.mark(a:read())
        local t = kumo.fs.open('{path}', 'w+b')
        kumo.test.mark(t:read())
        local r = kumo.fs.open('{tmp_path}/new.txt', 'r+')
        kumo.test.mark(r:read())
    """, recorder=recorder)
    assert recorder.marks == ["ab23456789Z", "", ""]
    assert path.read_bytes() == b""
    assert (tmp_path / "new.txt").exists()


async def test_lua_open_errors_use_kumomta_texts(tmp_path: Path) -> None:
    path = tmp_path / "f.txt"
    path.write_text("x")
    recorder = Recorder()
    await load(tmp_path, f"""\
        local kumo = require 'kumo'
        local function err(fn, ...)
          local ok, e = pcall(fn, ...)
          kumo.test.mark(ok or tostring(e))
        end
        err(kumo.fs.open, '{tmp_path}/missing.txt')
        err(kumo.fs.open, '{path}', 'rw')
        local w = kumo.fs.open('{path}', 'w')
        err(w.read, w)
        err(w.seek, w, 'set', 'cur')
        err(w.seek, w, 1, 2)
        err(w.seek, w, 'set', -1)
        err(w.seek, w, 'start')
        err(w.seek, w, 1.5)
        w:close()
        err(w.write, w, 'x')
        err(w.seek, w)
    """, recorder=recorder)
    assert recorder.marks == [
        f"kumo.fs.open: failed to open {tmp_path}/missing.txt with mode r: "
        "No such file or directory (os error 2)",
        "kumo.fs.open: unsupported file mode `rw`",
        "AsyncFile:read: Bad file descriptor (os error 9)",
        "AsyncFile:seek: whence already set",
        "AsyncFile:seek: offset already set",
        "AsyncFile:seek: start-relative offset -1 is out of range",
        "AsyncFile:seek: invalid whence/offset parameters to seek",
        "AsyncFile:seek: invalid whence/offset parameters to seek",
        "AsyncFile:write: attempt to flush a closed file handle",
        "AsyncFile:seek: attempt to seek a closed file handle",
    ]


async def test_python_policy_awaits_the_fs_functions(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("abc")
    kumo = make_runtime().kumo
    assert await kumo.fs.read_dir(str(tmp_path)) == [f"{tmp_path}/a.txt"]
    assert await kumo.read_dir(str(tmp_path)) == [f"{tmp_path}/a.txt"]
    (tmp_path / "link").symlink_to(tmp_path / "a.txt")
    link = await kumo.fs.symlink_metadata_for_path(str(tmp_path / "link"))
    assert (link["is_symlink"], link["is_file"]) == (True, False)
    meta = await kumo.fs.metadata_for_path(str(tmp_path / "a.txt"))
    assert (meta["is_file"], meta["len"]) == (True, 3)
    file = await kumo.fs.open(str(tmp_path / "a.txt"), "r")
    assert await file.read() == b"abc"
    await file.close()
