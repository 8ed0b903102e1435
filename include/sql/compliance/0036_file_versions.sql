-- A bucket with Object Versioning keeps every version an object had: a delete without a generation only made the
-- live version noncurrent, and an erasure recorded the file 'deleted' while its copies stayed. The erasure now deletes
-- each version by its generation and lists the object again to verify none is left; how many versions it deleted:
alter table compliance.erasure_files add column versions_deleted integer check (versions_deleted >= 0),
    -- A bucket's soft delete (on by default on GCS, 7 days) keeps every deleted version recoverable by the bucket's
    -- owner until its retention ends, and no client can delete it sooner: until when (NULL: not recoverable).
    add column recoverable_until timestamptz;
