-- The busiest-keys list reads every key's counters of a tenant over a window; with the counts in
-- the index it is an index-only scan instead of a visit to every heap page.
DROP INDEX key_usage_minute_tenant_bucket_idx;
CREATE INDEX key_usage_minute_tenant_bucket_idx ON key_usage_minute (tenant_id, bucket) INCLUDE (api_key_id, outcome, count);
DROP INDEX key_usage_hour_tenant_bucket_idx;
CREATE INDEX key_usage_hour_tenant_bucket_idx ON key_usage_hour (tenant_id, bucket) INCLUDE (api_key_id, outcome, count);
DROP INDEX key_usage_day_tenant_bucket_idx;
CREATE INDEX key_usage_day_tenant_bucket_idx ON key_usage_day (tenant_id, bucket) INCLUDE (api_key_id, outcome, count);
