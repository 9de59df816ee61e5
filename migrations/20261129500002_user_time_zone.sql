-- app_user.time_zone: the IANA time zone the person reads the portal's times in (chosen on the
-- account page from a built-in list; UTC by default).
ALTER TABLE app_user ADD COLUMN time_zone text NOT NULL DEFAULT 'UTC';
