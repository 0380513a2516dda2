package postgres

// ListenApplicationName is the application_name of s's listening connections.
func ListenApplicationName(s *Store) string { return s.listenAppName() }
