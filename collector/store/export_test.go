package store

// Retention's statements, for the test that runs them on both engines.
var (
	SQLToday         = sqlToday
	SQLTableEngines  = sqlTableEngines
	SQLPartitions    = sqlPartitions
	DropPartitionSQL = dropPartitionSQL
)

var DropDatabaseSQL = dropDatabaseSQL
