package postgres

// ListenApplicationName is the application_name of s's listening connections.
func ListenApplicationName(s *Store) string { return s.listenAppName() }

// SweepLockKey is the advisory lock key the retention sweeper takes in s's schema.
func SweepLockKey(s *Store) int64 { return lockKey("sweep", s.schema) }
