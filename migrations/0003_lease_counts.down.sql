DROP TRIGGER IF EXISTS lease_count ON hub.leases;
DROP FUNCTION IF EXISTS hub.lease_count();
DROP TABLE IF EXISTS hub.lease_counts;
