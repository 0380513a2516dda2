package postgres

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/spool-run/spool/internal/store"
)

// notes collects the notifications of one transaction; send delivers them inside it, so
// they reach listeners at commit and never for a rolled-back change. Each message is
// "topic:payload" on the store's channel; PostgreSQL drops duplicates within a transaction.
type notes struct {
	submit bool
	seen   map[string]bool
	msgs   []string
}

func (n *notes) add(topic, payload string) {
	msg := topic + ":" + payload
	if n.seen[msg] {
		return
	}
	if n.seen == nil {
		n.seen = map[string]bool{}
	}
	n.seen[msg] = true
	n.msgs = append(n.msgs, msg)
}

func (n *notes) finish(id string) { n.add(store.TopicFinish, id) }
func (n *notes) cancel(id string) { n.add(store.TopicCancel, id) }
func (n *notes) event(id string)  { n.add(store.TopicEvent, id) }

// runnable notes that runs became claimable.
func (n *notes) runnable() {
	if !n.submit {
		n.submit = true
		n.add(store.TopicSubmit, "")
	}
}

// send queues the notifications in q's transaction.
func (n *notes) send(ctx context.Context, q querier, channel string) error {
	if len(n.msgs) == 0 {
		return nil
	}
	_, err := q.Exec(ctx, notifySQL, channel, n.msgs)
	return err
}

// queue adds the notifications to a batch.
func (n *notes) queue(b *pgx.Batch, channel string) {
	if len(n.msgs) > 0 {
		b.Queue(notifySQL, channel, n.msgs)
	}
}

const notifySQL = `SELECT pg_notify($1, m) FROM unnest($2::text[]) AS m`

// Listen delivers the notifications of every node using this schema until ctx ends, then
// closes the channel. It holds one dedicated connection running LISTEN; when the connection
// fails it reconnects (backing off up to 5 s) and then delivers a TopicSubmit notification,
// since notifications sent while it was away are lost and the consumer should look again.
// Delivery waits for the consumer: nothing is dropped while ctx lasts.
func (s *Store) Listen(ctx context.Context) (<-chan store.Notification, error) {
	conn, err := s.listenConn(ctx)
	if err != nil {
		return nil, err
	}
	lctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(s.ctx, cancel) // Close ends every listener
	ch := make(chan store.Notification, 256)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer stop()
		defer cancel()
		defer close(ch)
		s.listen(lctx, conn, ch)
	}()
	return ch, nil
}

// listenConn opens a connection outside the pool and runs LISTEN on it.
func (s *Store) listenConn(ctx context.Context) (*pgx.Conn, error) {
	cfg := s.pool.Config().ConnConfig.Copy()
	cfg.RuntimeParams["application_name"] = s.listenAppName()
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: listen: connect: %w", err)
	}
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{s.channel}.Sanitize()); err != nil {
		conn.Close(context.WithoutCancel(ctx))
		return nil, fmt.Errorf("postgres: listen: %w", err)
	}
	return conn, nil
}

// listenAppName names listening connections in pg_stat_activity.
func (s *Store) listenAppName() string {
	name := "spool-listen " + s.channel
	return name[:min(len(name), 63)]
}

func (s *Store) listen(ctx context.Context, conn *pgx.Conn, ch chan<- store.Notification) {
	closeConn := func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		defer cancel()
		conn.Close(cctx)
	}
	deliver := func(n store.Notification) bool {
		select {
		case ch <- n:
			return true
		case <-ctx.Done():
			return false
		}
	}
	for {
		msg, err := conn.WaitForNotification(ctx)
		if err == nil {
			topic, payload, _ := strings.Cut(msg.Payload, ":")
			if !deliver(store.Notification{Topic: topic, Payload: payload}) {
				closeConn()
				return
			}
			continue
		}
		closeConn()
		if ctx.Err() != nil {
			return
		}
		// The connection failed: reconnect, backing off.
		wait := 100 * time.Millisecond
		for {
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
			conn, err = s.listenConn(ctx)
			if err == nil {
				break
			}
			if ctx.Err() != nil {
				return
			}
			wait = min(2*wait, 5*time.Second)
		}
		if !deliver(store.Notification{Topic: store.TopicSubmit}) {
			closeConn()
			return
		}
	}
}
