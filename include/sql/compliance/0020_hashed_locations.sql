-- Once a subject's erasure is verified, each of its files' locations is kept as its bucket and the keyed hash of
-- the whole location ('gs://bucket/#<hash>', include/subjects.py location_hash): a file's name can be personal data,
-- and the evidence kept it after the file was gone (found by a fault trial). uri_hashed says which rows hold a hash.
alter table compliance.erasure_files add column uri_hashed boolean not null default false;
