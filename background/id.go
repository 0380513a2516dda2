package background

import (
	"crypto/rand"
	"encoding/binary"
	"time"
)

// crockford is the base32 alphabet of ULIDs: no I, L, O or U.
const crockford = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

// newID returns "task_" and a ULID: 48 bits of milliseconds since the epoch, then 80 random
// bits, in 26 Crockford base32 characters, so ids sort by creation time.
func newID(now time.Time) string {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], uint64(now.UnixMilli())<<16)
	_, _ = rand.Read(b[6:])
	hi, lo := binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:])
	var s [26]byte
	for i := len(s) - 1; i >= 0; i-- {
		s[i] = crockford[lo&31]
		lo = lo>>5 | hi<<59
		hi >>= 5
	}
	return "task_" + string(s[:])
}
