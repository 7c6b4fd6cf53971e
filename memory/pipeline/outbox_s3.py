"""``S3Outbox``: the outbox in a regular Amazon S3 bucket, one prefix per tenant.

Keys: ``<prefix>/<tenant>/{pending,claims,dead}/<id>.json`` and
``<prefix>/<tenant>/erasures/<folder>/<id>.json`` (``erasure_folder``; ``_`` for entries
without a tenant). Every object is written with server-side encryption (SSE-S3 by default, SSE-KMS
with a key id). Tenant data is read and written with ``client_for(tenant_id)``: in the
multi-tenant app, the tenant's token-vending-machine credentials, whose role policy allows only
``<prefix>/${aws:PrincipalTag/TenantID}/*``, and there reading, not writing, the erasure markers
(``add_erasure`` is ``forget``'s, with the operator's credentials; ``scripts.tvm_role``). Which tenants have
pending entries is listed with ``lister`` (the app's own credentials: key names only, never
content; the runtime role's ``s3:ListBucket`` on the bucket has no prefix condition,
``scripts.agentcore_cmd``): a tenant whose ``pending/`` folder is empty (only dead letters,
claims or erasure markers) is not read, so the replay assumes no role for it.

Claims are lease objects under ``claims/``: created with ``If-None-Match: *`` (S3 answers 412
PreconditionFailed, or 409 ConditionalRequestConflict during a concurrent write, to the loser),
taken over only after their ``expires_at`` with ``If-Match: <etag>`` and deleted with
``If-Match`` on release, so a process whose lease expired never deletes its successor's.
(moto 5.2.5 enforces ``IfNoneMatch``/``IfMatch`` on PutObject and ``IfMatch`` on
DeleteObject the same way: checked in tests.)
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
import uuid
from typing import Any, Callable, Iterator

from botocore.exceptions import BotoCoreError, ClientError

from memory.aws import error_code, http_status, translate_error
from memory.errors import InvalidTenantId, MemoryLibraryError, error_reason
from memory.pipeline.outbox import (
    USER_FOLDER_PREFIX,
    Claim,
    DeadLetter,
    ErasureMarker,
    OutboxEntry,
    drop_dead_lettered,
    erasure_folder,
    may_cover_user,
    parse_or_none,
    read_entry,
)
from memory.tenants import validate_tenant_id

logger = logging.getLogger(__name__)

ClientFor = Callable[[str | None], Any]
_NO_TENANT = "_"
#: The folders of a tenant's prefix the app writes (and deletes in) with the tenant's credentials.
APP_WRITTEN_FOLDERS = ("pending", "claims", "dead")
#: The folder of erasure markers: written by ``forget`` only (the operator's credentials); the app
#: only lists and reads it (``scripts.tvm_role`` grants tenant sessions no more).
ERASURES_FOLDER = "erasures"
_LOST_RACE = {"PreconditionFailed", "ConditionalRequestConflict"}


def _lost_race(exc: ClientError) -> bool:
    """A conditional write refused because another writer got there first (412, 409) or the
    object it was conditioned on is gone (``NoSuchKey``: ``If-Match`` on a deleted key; not any
    404, which may be a missing bucket)."""
    return error_code(exc) in _LOST_RACE or error_code(exc) == "NoSuchKey" or http_status(exc) in (409, 412)


class S3Outbox:
    """The ``memory.pipeline.outbox.Outbox`` protocol over objects in ``bucket`` under ``prefix``."""

    def __init__(
        self,
        client_for: ClientFor,
        bucket: str,
        *,
        prefix: str = "outbox",
        lister: Any | None = None,
        kms_key_id: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """Open the outbox.

        Args:
            client_for: ``client_for(tenant_id)`` returns the S3 client for that tenant's prefix
                (the tenant's TVM credentials in multi-tenant deployments).
            bucket: The outbox bucket (a regular S3 bucket).
            prefix: Key prefix; each tenant's objects live under ``<prefix>/<tenant>/``.
            lister: Client that lists which tenants have a prefix (default: ``client_for(None)``).
            kms_key_id: SSE-KMS key for every object (default: SSE-S3).
            clock: Epoch seconds, for claim leases.
        """
        self._client_for = client_for
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self._lister = lister
        self._sse: dict[str, str] = (
            {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": kms_key_id}
            if kms_key_id
            else {"ServerSideEncryption": "AES256"}
        )
        self._clock = clock
        self.owner = uuid.uuid4().hex  # who holds the claims this instance makes
        self._markers: dict[str, ErasureMarker] = {}
        self.writes = 0  # PutObject/DeleteObject requests made (the benchmark counts them)

    # -- keys ---------------------------------------------------------------------------------

    def tenant_prefix(self, tenant_id: str | None) -> str:
        """``<prefix>/<tenant>/`` (the tenant id validated first)."""
        segment = _NO_TENANT if tenant_id is None else validate_tenant_id(tenant_id)
        return f"{self.prefix}/{segment}/"

    def _key(self, tenant_id: str | None, kind: str, name: str) -> str:
        return f"{self.tenant_prefix(tenant_id)}{kind}/{name}.json"

    # -- pending entries ----------------------------------------------------------------------

    def put(self, entry: OutboxEntry) -> str:
        """Write ``entry`` (replacing one with the same id); returns its id."""
        self._put(entry.tenant_id, self._key(entry.tenant_id, "pending", entry.entry_id), entry.to_json())
        return entry.entry_id

    def get(self, entry_id: str, tenant_id: str | None = None) -> OutboxEntry | None:
        """The pending entry, or None if it is not (or no longer) pending."""
        data = self._get(tenant_id, self._key(tenant_id, "pending", entry_id))
        return None if data is None else read_entry(data, entry_id)

    def pending(self, tenant_id: str | None = None) -> list[OutboxEntry]:
        """Pending entries of every tenant (or of ``tenant_id``), oldest first.

        Listing every tenant, only those whose ``pending/`` folder ``lister`` finds an object in
        are read (with their credentials: one STS AssumeRole each in the multi-tenant app); one
        whose prefix cannot be read (refused, STS unavailable) is skipped with a warning: its
        entries stay for a later replay and the other tenants' are not held back. Asked for one
        tenant, the error is raised.
        """
        if tenant_id is not None:
            return sorted(self._pending_of(tenant_id), key=lambda e: e.created_at)
        entries = []
        for tenant in self.tenants():
            try:
                if self._has_pending(tenant):
                    entries += self._pending_of(tenant)
            except MemoryLibraryError as exc:
                logger.warning("outbox of tenant %s unreadable (%s); its entries wait for a later replay",
                               tenant, error_reason(exc))
        return sorted(entries, key=lambda e: e.created_at)

    def _has_pending(self, tenant_id: str | None) -> bool:
        """Whether the tenant's ``pending/`` folder holds an object (one LIST with ``lister``)."""
        client = self._lister or self._client_for(None)
        try:
            listed = client.list_objects_v2(Bucket=self.bucket, Prefix=f"{self.tenant_prefix(tenant_id)}pending/", MaxKeys=1)
        except (ClientError, BotoCoreError) as exc:
            raise translate_error(exc, f"list outbox objects in {self.bucket}") from exc
        return bool(listed.get("Contents"))

    def _pending_of(self, tenant_id: str | None) -> list[OutboxEntry]:
        found = (self.get(_name(key), tenant_id) for key in self._keys(tenant_id, "pending"))
        return [entry for entry in found if entry is not None]

    def remove(self, entry_id: str, tenant_id: str | None = None) -> None:
        """Delete a pending entry (a missing one is ignored)."""
        self._delete(tenant_id, self._key(tenant_id, "pending", entry_id))

    def swap(self, expected: OutboxEntry, new: OutboxEntry | None) -> bool:
        """Compare-and-set on the pending entry: the write carries ``If-Match`` with the ETag of
        the version read, so one written in between fails it (412) instead of being lost."""
        if new is not None and new.entry_id != expected.entry_id:
            raise ValueError("swap replaces an entry by one with the same id")
        tenant_id = expected.tenant_id
        key = self._key(tenant_id, "pending", expected.entry_id)
        found = self._get_with_etag(tenant_id, key)
        current = None if found is None else read_entry(found[0], expected.entry_id)
        if found is None or current is None or current.created_at != expected.created_at:
            return False
        if new is not None:
            body = json.dumps(new.to_json(), ensure_ascii=False).encode("utf-8")
            return self._conditional_put(tenant_id, key, body, IfMatch=found[1]) is not None
        return self._conditional_delete(tenant_id, key, found[1])

    def tenants(self) -> list[str | None]:
        """Tenants that have a prefix in the outbox (listed with ``lister``); folders that are not
        a valid tenant id (none of ours: e.g. an operator's copy) are skipped with a warning."""
        client = self._lister or self._client_for(None)
        found: list[str | None] = []
        try:
            for page in client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=f"{self.prefix}/", Delimiter="/"
            ):
                for common in page.get("CommonPrefixes", []):
                    segment = common["Prefix"][len(self.prefix) + 1 :].strip("/")
                    if segment == _NO_TENANT:
                        found.append(None)
                        continue
                    try:
                        found.append(validate_tenant_id(segment))
                    except InvalidTenantId:
                        logger.warning("outbox folder %r is not a tenant id; skipped", segment[:64])
        except (ClientError, BotoCoreError) as exc:
            raise translate_error(exc, f"list outbox tenants in {self.bucket}") from exc
        return found

    # -- claims -------------------------------------------------------------------------------

    def claim(self, entry_id: str, tenant_id: str | None = None, *, ttl_seconds: float = 600.0) -> Claim | None:
        """A lease on the entry until ``ttl_seconds`` from now, or None while another holds one.

        A 412 can answer botocore's retry of a PUT that S3 had committed (its response lost): the
        lease found is then the very one this call wrote, and it is ours.
        """
        key = self._key(tenant_id, "claims", entry_id)
        lease = {"owner": self.owner, "expires_at": self._clock() + ttl_seconds}
        etag, current = self._put_lease(tenant_id, key, lease, IfNoneMatch="*")
        if etag is None:
            if current is None:  # released meanwhile: try once more
                etag, _ = self._put_lease(tenant_id, key, lease, IfNoneMatch="*")
            elif float(current[0].get("expires_at", 0)) < self._clock():  # its holder died
                etag, _ = self._put_lease(tenant_id, key, lease, IfMatch=current[1])
        return None if etag is None else Claim(tenant_id, entry_id, etag)

    def _put_lease(
        self, tenant_id: str | None, key: str, lease: dict[str, Any], **condition: str
    ) -> tuple[str | None, tuple[dict[str, Any], str] | None]:
        """Write ``lease`` under ``condition``: its ETag, or None and the lease found instead.

        A refusal is read back: it may answer botocore's retry of our own committed PUT, and the
        lease found is then this one (ours, with its ETag).
        """
        etag = self._conditional_put(tenant_id, key, json.dumps(lease).encode(), **condition)
        if etag is not None:
            return etag, None
        current = self._get_with_etag(tenant_id, key)
        if current is not None and current[0] == lease:  # committed; botocore's retry got the 412
            return current[1], current
        return None, current

    def release(self, claim: Claim) -> None:
        """Delete the lease if it is still ours (``If-Match``); a lost lease is left alone."""
        self._conditional_delete(claim.tenant_id, self._key(claim.tenant_id, "claims", claim.entry_id), claim.token)

    # -- dead letters -------------------------------------------------------------------------

    def dead_letter(self, entry: OutboxEntry, reason: str) -> bool:
        """Write the dead letter first, then drop the pending entry (never neither) if it is still
        this version (``If-Match``); a newer one stays and the letter goes (``Outbox.dead_letter``)."""
        key = self._key(entry.tenant_id, "dead", entry.entry_id)
        self._put(entry.tenant_id, key, DeadLetter(entry, reason).to_json())
        return drop_dead_lettered(self, entry)

    def dead_letters(self, tenant_id: str | None = None) -> list[DeadLetter]:
        """Dead letters of every tenant (or of ``tenant_id``), oldest first."""
        tenants = [tenant_id] if tenant_id is not None else self.tenants()
        letters = []
        for tenant in tenants:
            for key in self._keys(tenant, "dead"):
                data = self._get(tenant, key)
                letter = None if data is None else parse_or_none(DeadLetter.from_json, data, key)
                if letter is not None:
                    letters.append(letter)
        return sorted(letters, key=lambda d: d.dead_at)

    def revive(self, entry_id: str, tenant_id: str | None = None) -> OutboxEntry | None:
        """Put the dead letter's entry back as pending (attempts reset), then drop the letter."""
        key = self._key(tenant_id, "dead", entry_id)
        data = self._get(tenant_id, key)
        letter = None if data is None else parse_or_none(DeadLetter.from_json, data, key)
        if letter is None:
            return None
        entry = dataclasses.replace(letter.entry, attempts=0, open=False)
        self.put(entry)
        self._delete(tenant_id, key)
        return entry

    def purge(self, entry_id: str, tenant_id: str | None = None) -> bool:
        """Delete a dead letter for good; True if there was one."""
        key = self._key(tenant_id, "dead", entry_id)
        existed = self._get(tenant_id, key) is not None
        self._delete(tenant_id, key)
        return existed

    # -- erasure markers ----------------------------------------------------------------------

    def add_erasure(self, marker: ErasureMarker) -> None:
        """Record an erasure marker durably, under its scope's folder (``erasure_folder``)."""
        key = f"{self.tenant_prefix(marker.tenant_id)}erasures/{erasure_folder(marker.user_id)}/{marker.marker_id}.json"
        self._put(marker.tenant_id, key, marker.to_json())

    def erasures(self, tenant_id: str | None, user_id: str | None = None) -> list[ErasureMarker]:
        """The tenant's erasure markers, each read once and then cached (markers never change).

        With ``user_id``, three LISTs at most however many users were erased: ``erasures/`` by
        folder, read only until the per-user folders (``u-``) begin -- S3 lists in key order, and
        the tenant-wide folder (``all/``) and the markers filed flat by earlier versions
        (``era-``, one more page per 1,000 of them) sort before them -- then the tenant-wide
        folder if it exists, and the user's folder unless the first listing showed it absent.
        Other users' markers are never listed or read.
        """
        if user_id is None:
            keys = list(self._keys(tenant_id, "erasures"))
        else:
            root = f"{self.tenant_prefix(tenant_id)}erasures/"
            everyone, mine = (f"{root}{erasure_folder(user)}/" for user in (None, user_id))
            keys, folders, listed_up_to = self._list_level(tenant_id, root, stop_after=root + USER_FOLDER_PREFIX)
            if everyone in folders:
                keys += self._list_level(tenant_id, everyone)[0]
            if mine in folders or (listed_up_to is not None and mine > listed_up_to):
                keys += self._list_level(tenant_id, mine)[0]
        markers = []
        for key in keys:
            marker = self._markers.get(key)
            if marker is None:
                data = self._get(tenant_id, key)
                marker = None if data is None else parse_or_none(ErasureMarker.from_json, data, key)
                if marker is not None:
                    self._markers[key] = marker
            if marker is not None and may_cover_user(marker, user_id):
                markers.append(marker)
        return markers

    # -- S3 -----------------------------------------------------------------------------------

    def _put(self, tenant_id: str | None, key: str, data: dict[str, Any]) -> None:
        body = json.dumps(data, ensure_ascii=False).encode("utf-8")
        try:
            self._client_for(tenant_id).put_object(
                Bucket=self.bucket, Key=key, Body=body, ContentType="application/json", **self._sse
            )
            self.writes += 1
        except (ClientError, BotoCoreError) as exc:
            raise translate_error(exc, f"write outbox object in {self.bucket}") from exc

    def _conditional_put(self, tenant_id: str | None, key: str, body: bytes, **condition: str) -> str | None:
        """PUT under ``condition``: the new ETag, or None when the condition failed."""
        client = self._client_for(tenant_id)
        response = self._conditional("write", tenant_id, key, lambda: client.put_object(
            Bucket=self.bucket, Key=key, Body=body, ContentType="application/json", **self._sse, **condition
        ), on_existing="IfMatch" in condition)
        return None if response is None else str(response["ETag"])

    def _conditional_delete(self, tenant_id: str | None, key: str, etag: str) -> bool:
        """Delete ``key`` only while its ETag is ``etag``; False when it changed or is gone."""
        client = self._client_for(tenant_id)
        response = self._conditional(
            "delete", tenant_id, key, lambda: client.delete_object(Bucket=self.bucket, Key=key, IfMatch=etag)
        )
        return response is not None

    def _conditional(
        self,
        verb: str,
        tenant_id: str | None,
        key: str,
        request: Callable[[], dict[str, Any]],
        *,
        on_existing: bool = True,
    ) -> dict[str, Any] | None:
        """Send a conditional request on ``key``: its response, or None when another writer got
        there first or the object it was conditioned on is gone (``_lost_race``, or a 403 for a
        key that is not there: ``_gone``). ``on_existing=False`` (a create, ``If-None-Match``):
        the key is meant to be absent, so a 403 is a refusal."""
        try:
            response = request()
        except ClientError as exc:
            if _lost_race(exc) or (on_existing and self._gone(exc, tenant_id, key)):
                return None
            raise translate_error(exc, f"{verb} outbox object in {self.bucket}") from exc
        except BotoCoreError as exc:
            raise translate_error(exc, f"{verb} outbox object in {self.bucket}") from exc
        self.writes += 1
        return response

    def _get_with_etag(self, tenant_id: str | None, key: str) -> tuple[dict[str, Any], str] | None:
        try:
            response = self._client_for(tenant_id).get_object(Bucket=self.bucket, Key=key)
            return json.loads(response["Body"].read()), str(response["ETag"])
        except ClientError as exc:
            if error_code(exc) in ("NoSuchKey", "404") or http_status(exc) == 404 or self._gone(exc, tenant_id, key):
                return None
            raise translate_error(exc, f"read outbox object in {self.bucket}") from exc
        except BotoCoreError as exc:
            raise translate_error(exc, f"read outbox object in {self.bucket}") from exc
        except ValueError:
            logger.error("outbox object %s is unreadable; leaving it in place", key.rsplit("/", 1)[-1])
            return None

    def _gone(self, exc: ClientError, tenant_id: str | None, key: str) -> bool:
        """Whether a 403 answered a request on a key that is not there.

        S3 answers 403, not 404, for a missing key to a caller without ``s3:ListBucket`` on the
        bucket, and the tenant role's ListBucket holds only for listings under its own prefix
        (an ``s3:prefix`` condition, absent from object requests). Listing the key (allowed)
        tells a missing key from a real refusal, which stays an error.
        """
        if http_status(exc) != 403:
            return False
        try:
            listed = self._client_for(tenant_id).list_objects_v2(Bucket=self.bucket, Prefix=key, MaxKeys=1)
        except (ClientError, BotoCoreError):
            return False  # cannot tell: the refusal stands
        return not any(item.get("Key") == key for item in listed.get("Contents", []))

    def _get(self, tenant_id: str | None, key: str) -> Any:
        found = self._get_with_etag(tenant_id, key)
        return None if found is None else found[0]

    def _delete(self, tenant_id: str | None, key: str) -> None:
        try:
            self._client_for(tenant_id).delete_object(Bucket=self.bucket, Key=key)
            self.writes += 1
        except (ClientError, BotoCoreError) as exc:
            raise translate_error(exc, f"delete outbox object in {self.bucket}") from exc

    def _list_level(
        self, tenant_id: str | None, prefix: str, *, stop_after: str | None = None
    ) -> tuple[list[str], set[str], str | None]:
        """The ``.json`` keys directly under ``prefix`` and its sub-folders' prefixes (one level).

        With ``stop_after``, no further page is read once a page reaches that key (S3 lists in
        UTF-8 binary order); the third value is then the last key or folder listed, None when
        the listing is complete.
        """
        keys: list[str] = []
        folders: set[str] = set()
        try:
            pages = self._client_for(tenant_id).get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=prefix, Delimiter="/"
            )
            for page in pages:
                listed = [item["Key"] for item in page.get("Contents", [])]
                listed_folders = [p["Prefix"] for p in page.get("CommonPrefixes", [])]
                keys += [key for key in listed if key.endswith(".json")]
                folders.update(listed_folders)
                last = max(listed + listed_folders, default="")
                if stop_after is not None and page.get("IsTruncated") and last >= stop_after:
                    return keys, folders, last
        except (ClientError, BotoCoreError) as exc:
            raise translate_error(exc, f"list outbox objects in {self.bucket}") from exc
        return keys, folders, None

    def _keys(self, tenant_id: str | None, kind: str) -> Iterator[str]:
        prefix = f"{self.tenant_prefix(tenant_id)}{kind}/"
        try:
            pages = self._client_for(tenant_id).get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=prefix
            )
            keys = [item["Key"] for page in pages for item in page.get("Contents", [])]
        except (ClientError, BotoCoreError) as exc:
            raise translate_error(exc, f"list outbox objects in {self.bucket}") from exc
        return iter(k for k in keys if k.endswith(".json"))


def _name(key: str) -> str:
    return key.rsplit("/", 1)[-1][: -len(".json")]

