package migrations

// To migrates up or down to version, for tests of one migration.
func To(databaseURL string, version uint) error {
	return withMigrate(databaseURL, func(m migrator) error { return m.Migrate.Migrate(version) })
}
