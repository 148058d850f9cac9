-- Issue 16: the limits documents of users and groups take the names the quota and bandwidth enforcement uses.
--   storage_bytes → quota_bytes, storage_files → quota_files, upload_bytes_per_second → bandwidth_up,
--   download_bytes_per_second → bandwidth_down, daily_bytes (both directions together) → daily_upload_bytes and
--   daily_download_bytes (each direction gets the whole old volume: nobody's allowance shrinks).
-- A new name already present wins over the old one. Only rows with an old name change (and are announced to the
-- replicas by the notify triggers, which reload them).

CREATE FUNCTION ftp_limits_renamed(old jsonb) RETURNS jsonb LANGUAGE sql IMMUTABLE AS $$
  SELECT jsonb_strip_nulls(jsonb_build_object(
      'quota_bytes', old -> 'storage_bytes',
      'quota_files', old -> 'storage_files',
      'daily_upload_bytes', old -> 'daily_bytes',
      'daily_download_bytes', old -> 'daily_bytes',
      'bandwidth_up', old -> 'upload_bytes_per_second',
      'bandwidth_down', old -> 'download_bytes_per_second'))
    || (old - ARRAY['storage_bytes', 'storage_files', 'daily_bytes', 'upload_bytes_per_second', 'download_bytes_per_second'])
$$;

UPDATE ftp_users SET limits = ftp_limits_renamed(limits), updated_at = now()
  WHERE limits ?| ARRAY['storage_bytes', 'storage_files', 'daily_bytes', 'upload_bytes_per_second', 'download_bytes_per_second'];
UPDATE ftp_groups SET limits = ftp_limits_renamed(limits), updated_at = now()
  WHERE limits ?| ARRAY['storage_bytes', 'storage_files', 'daily_bytes', 'upload_bytes_per_second', 'download_bytes_per_second'];

DROP FUNCTION ftp_limits_renamed(jsonb);
