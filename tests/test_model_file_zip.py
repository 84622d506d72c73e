"""Zip layouts on which zip readers disagree, refused by both csae.load and
the C reader (src_c/npz.c): otherwise one file could hold two models, one
seen by Python (zipfile) and another by C.

Each archive is built by hand from two valid model files A and B: both sets
of members are in the file, and the layout decides which directory a reader
finds."""

import struct

import numpy as np
import pytest

import csae
from libcsae_ctypes import Reader
from test_model_file import NAMES, saved


@pytest.fixture(scope="module")
def reader():
    return Reader()


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("pair")
    a = saved(tmp, "a.npz", random_state=3)
    b = saved(tmp, "b.npz", random_state=4)
    return a.read_bytes(), b.read_bytes(), csae.load(a), csae.load(b)


def split(data):
    """(members, central directory, entry count) of a file np.savez wrote."""
    n, cd_size, cd_offset = struct.unpack_from("<HII", data, len(data) - 12)
    return data[:cd_offset], data[cd_offset:cd_offset + cd_size], n


def shifted(cd, n, delta):
    """The central directory cd with every local-header offset moved by delta."""
    out, pos = bytearray(cd), 0
    for _ in range(n):
        nlen, xlen, clen = struct.unpack_from("<HHH", out, pos + 28)
        struct.pack_into("<I", out, pos + 42, struct.unpack_from("<I", out, pos + 42)[0] + delta)
        pos += 46 + nlen + xlen + clen
    return bytes(out)


def end_record(n, size, offset, comment_len=0):
    return struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, n, n, size, offset, comment_len)


def zip64_end_record(n, size, offset):
    return struct.pack("<IQHHIIQQQQ", 0x06064B50, 44, 45, 45, 0, 0, n, n, size, offset)


def zip64_locator(at):
    return struct.pack("<IIQI", 0x07064B50, 0, at, 1)


def weights_zipfile_sees(path):
    with np.load(path) as data:
        return data["encoder_weights"]


def assert_both_refuse(reader, path):
    with pytest.raises(ValueError, match="not a valid csae model file"):
        csae.load(path)
    assert reader.info(path)[0] == "CSAE_ERR_FORMAT"


def test_a_second_end_record_hidden_in_the_comment(reader, pair, tmp_path):
    """A's end record with a comment holding B's directory and end record,
    then two stray bytes: zipfile takes the last signature (B), a reader
    that wants the comment to end the file takes A's."""
    a, b, model_a, model_b = pair
    ma, ca, na = split(a)
    mb, cb, nb = split(b)
    cd_b = shifted(cb, nb, len(ma))
    body = ma + mb
    comment = cd_b + end_record(nb, len(cb), len(body) + len(ca) + 22) + b"\0\0"
    data = body + ca + end_record(na, len(ca), len(body), len(comment)) + comment
    path = tmp_path / "two_ends.npz"
    path.write_bytes(data)
    # The file is the ambiguous one: zipfile by itself reads B from it.
    np.testing.assert_array_equal(weights_zipfile_sees(path), model_b.encoder_weights_)
    assert not np.array_equal(model_a.encoder_weights_, model_b.encoder_weights_)
    assert_both_refuse(reader, path)


def test_a_zip64_record_elsewhere_than_its_locator_says(reader, pair, tmp_path):
    """The locator points at A's zip64 record, the zip64 record right before
    the locator (where zipfile looks) is B's."""
    a, b, model_a, model_b = pair
    ma, ca, na = split(a)
    mb, cb, nb = split(b)
    body = ma + mb
    at_a = len(body) + len(ca)
    cd_b_at = at_a + 56
    cd_b = shifted(cb, nb, len(ma))
    data = (body + ca + zip64_end_record(na, len(ca), len(body)) + cd_b
            + zip64_end_record(nb, len(cb), cd_b_at) + zip64_locator(at_a)
            + end_record(0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF))
    path = tmp_path / "zip64.npz"
    path.write_bytes(data)
    np.testing.assert_array_equal(weights_zipfile_sees(path), model_b.encoder_weights_)
    assert_both_refuse(reader, path)


def test_a_zip64_record_where_its_locator_points_reads(reader, pair, tmp_path):
    """The same zip64 layout with one directory reads in both (the rule
    refuses the ambiguity, not zip64)."""
    a, _, model_a, _ = pair
    ma, ca, na = split(a)
    at = len(ma) + len(ca)
    data = (ma + ca + zip64_end_record(na, len(ca), len(ma)) + zip64_locator(at)
            + end_record(0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF))
    path = tmp_path / "zip64_ok.npz"
    path.write_bytes(data)
    model = csae.load(path)
    np.testing.assert_array_equal(model.encoder_weights_, model_a.encoder_weights_)
    st, info, _ = reader.info(path)
    assert st == "CSAE_OK"
    st, weights = reader.read(path, info, np.float64)
    assert st == "CSAE_OK"
    for name, w in zip(NAMES, weights):
        np.testing.assert_array_equal(w, getattr(model_a, name + "_"))


def local_header_offsets(data):
    _, cd, n = split(data)
    offsets, pos = {}, 0
    for _ in range(n):
        nlen, xlen, clen = struct.unpack_from("<HHH", cd, pos + 28)
        name = cd[pos + 46:pos + 46 + nlen].decode()
        offsets[name] = struct.unpack_from("<I", cd, pos + 42)[0]
        pos += 46 + nlen + xlen + clen
    return offsets


@pytest.mark.parametrize("field,offset,value", [
    ("crc", 14, 0x12345678), ("flags", 6, 0x0800), ("zip64 size", 30 + 19 + 4, 1),
    ("name", 30, ord("H"))], ids=["crc", "flags", "size", "name"])
def test_local_header_disagreeing_with_the_directory(reader, pair, tmp_path, field, offset,
                                                     value):
    a = bytearray(pair[0])
    at = local_header_offsets(bytes(a))["hyperparameters.npy"]
    width = {"crc": 4, "flags": 2, "zip64 size": 8, "name": 1}[field]
    a[at + offset:at + offset + width] = value.to_bytes(width, "little")
    path = tmp_path / "local.npz"
    path.write_bytes(bytes(a))
    assert_both_refuse(reader, path)
