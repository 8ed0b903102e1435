"""What a file column's location may name, and the folder buckets a machine without GCS uses (the erasure, the
export and discovery read them the way they read GCS): a location that is not a file in a valid bucket is not
touched (the erasure records it not_allowed); a bucket folder that does not exist is refused, never taken for
"the file is already gone"."""
from __future__ import annotations

import pytest

from include.objectstore import FileRef, FolderBuckets, ObjectNotFound, ObjectStoreRefused


@pytest.mark.parametrize("text", [
    None, 42, "", "s3://acme-uploads/a.pdf", "gs://", "gs://acme-uploads", "gs://acme-uploads/",
    "gs://Acme-Uploads/a.pdf", "gs://ab/a.pdf", "gs://acme..uploads/a.pdf", "gs://-acme/a.pdf",
    "gs://acme-uploads/" + "x" * 1025, "gs://acme-uploads/a\nb.pdf", "gs://acme-uploads/a\x7fb.pdf",
    "gs://acme-uploads\n/a.pdf",  # a bucket name's check matched before a final line break
])
def test_a_location_that_is_not_a_file_in_a_valid_bucket_names_none(text):
    assert FileRef.parse(text) is None


def test_a_file_location_names_its_bucket_and_object_as_stored():
    ref = FileRef.parse("gs://acme-uploads/users/1/./a b/ü.pdf")
    assert (ref.bucket, ref.key) == ("acme-uploads", "users/1/./a b/ü.pdf")
    assert ref.uri == "gs://acme-uploads/users/1/./a b/ü.pdf"
    assert FileRef.parse("gs://acme-uploads/" + "é" * 512).key == "é" * 512  # 1,024 bytes: GCS's limit


def test_white_space_around_a_location_and_the_schemes_case_are_a_rows_not_the_files():
    """Found by a fault trial: 'gs://b/x.txt ' (a trailing space) named no object, so the export listed the file
    missing and the erasure took the 404 for 'already gone' and erased the row: the file stayed, named by nothing."""
    for text in ("gs://acme-uploads/users/1/x.txt ", " gs://acme-uploads/users/1/x.txt", "GS://acme-uploads/users/1/x.txt",
                 "\tGs://acme-uploads/users/1/x.txt\n"):
        ref = FileRef.parse(text)
        assert (ref.bucket, ref.key) == ("acme-uploads", "users/1/x.txt"), text
    assert FileRef.parse("gs://acme-uploads/a b.pdf").key == "a b.pdf"  # inside the name, a space is the name's


def test_folder_buckets_read_write_list_and_delete_as_a_bucket_does(tmp_path):
    bucket = FolderBuckets(tmp_path).bucket("acme-uploads")
    assert bucket.list() == []  # no folder yet: an empty listing
    with pytest.raises(ObjectStoreRefused, match="does not exist"):
        bucket.delete("users/1/a.pdf")  # a missing bucket is not "already gone"
    source = tmp_path / "source.bin"
    source.write_bytes(b"abc" * 10)
    bucket.put_file("users/1/a.pdf", source)
    bucket.put("users//2/./b.pdf", b"xy")  # empty and '.' segments: as a file system reads them
    assert bucket.list() == ["users/1/a.pdf", "users/2/b.pdf"] and bucket.list("users/2") == ["users/2/b.pdf"]
    # A '..' segment names an object of its own in a bucket, and another path in a folder: refused, nothing touched
    # (it used to be dropped, so deleting users/2/../1/a.pdf deleted users/2/1/a.pdf; escaping was never possible).
    for action in (lambda: bucket.put("users/../../2/b.pdf", b"xy"), lambda: bucket.delete("users/2/../1/a.pdf"),
                   lambda: bucket.get("users/2/../1/a.pdf"), lambda: bucket.exists("users/2/../1/a.pdf")):
        with pytest.raises(ObjectStoreRefused, match=r"has a '\.\.' in its object name.*nothing was read, written or"):
            action()
    assert not (tmp_path / "2").exists() and bucket.list() == ["users/1/a.pdf", "users/2/b.pdf"]
    assert bucket.exists("users/1/a.pdf") and bucket.get("users/1/a.pdf") == b"abc" * 10
    assert [(o.name, o.size) for o in bucket.describe("users/1")] == [("users/1/a.pdf", 30)]
    assert bucket.delete("users/1/a.pdf") is True and bucket.delete("users/1/a.pdf") is False
    assert not bucket.exists("users/1/a.pdf")
    with pytest.raises(ObjectNotFound):
        bucket.get("users/1/a.pdf")


def test_a_hand_built_step_names_the_store_or_bucket_it_was_not_given(tmp_path):
    """The plain step context (tests, benchmarks, the command line) answers as the seam's does: the connection or
    bucket it lacks, named in one sentence."""
    from include.audit import RunContext
    from include.config import Settings
    from include.errors import ConfigurationProblem
    from include.step import Step

    ops, support = object(), object()
    listing = FolderBuckets(tmp_path).bucket("acme-uploads")
    step = Step(ctx=RunContext(run_id="r", actor="t"), settings=Settings(), params=None, ops=ops,
                databases={"support_db": support}, bucket_stores={"acme-uploads": listing})
    assert step.database("ops_db") is ops and step.database("support_db") is support and step.stores("ops_db") is ops
    assert step.bucket("acme-uploads") is listing
    with pytest.raises(ConfigurationProblem, match="Airflow connection 'analytics_db' is not defined"):
        step.database("analytics_db")
    with pytest.raises(ConfigurationProblem, match="bucket 'elsewhere' is not reachable here"):
        step.bucket("elsewhere")
