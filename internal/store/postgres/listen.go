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
// "topic:payload" on the store's channel. Run ids of one topic are joined with commas into
// as few messages as fit PostgreSQL's payload limit: every NOTIFY adds to the shared queue
// each listener reads, so a message per run would cost every node per run.
type notes struct {
	submit bool
	ids    map[string][]string // topic -> run ids, in order, without duplicates
	seen   map[string]bool     // topic:id
}

// maxPayload keeps a message under PostgreSQL's 8,000-byte NOTIFY payload limit.
const maxPayload = 7900

func (n *notes) add(topic, id string) {
	if n.seen[topic+":"+id] {
		return
	}
	if n.seen == nil {
		n.seen = map[string]bool{}
		n.ids = map[string][]string{}
	}
	n.seen[topic+":"+id] = true
	n.ids[topic] = append(n.ids[topic], id)
}

func (n *notes) finish(id string) { n.add(store.TopicFinish, id) }
func (n *notes) cancel(id string) { n.add(store.TopicCancel, id) }
func (n *notes) event(id string)  { n.add(store.TopicEvent, id) }

// runnable notes that runs became claimable.
func (n *notes) runnable() { n.submit = true }

// messages returns the notifications to send.
func (n *notes) messages() []string {
	var msgs []string
	if n.submit {
		msgs = append(msgs, store.TopicSubmit+":")
	}
	for _, topic := range []string{store.TopicFinish, store.TopicCancel, store.TopicEvent, store.TopicSchedule} {
		var b strings.Builder
		for _, id := range n.ids[topic] {
			if b.Len() > 0 && b.Len()+1+len(id) > maxPayload {
				msgs = append(msgs, b.String())
				b.Reset()
			}
			if b.Len() == 0 {
				b.WriteString(topic + ":")
			} else {
				b.WriteByte(',')
			}
			b.WriteString(id)
		}
		if b.Len() > 0 {
			msgs = append(msgs, b.String())
		}
	}
	return msgs
}

// send queues the notifications in q's transaction.
func (n *notes) send(ctx context.Context, q querier, channel string) error {
	msgs := n.messages()
	if len(msgs) == 0 {
		return nil
	}
	_, err := q.Exec(ctx, notifySQL, channel, msgs)
	return err
}

// queue adds the notifications to a batch.
func (n *notes) queue(b *pgx.Batch, channel string) {
	if msgs := n.messages(); len(msgs) > 0 {
		b.Queue(notifySQL, channel, msgs)
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
			if topic == store.TopicSubmit {
				if !deliver(store.Notification{Topic: topic, Payload: payload}) {
					closeConn()
					return
				}
				continue
			}
			for id := range strings.SplitSeq(payload, ",") {
				if !deliver(store.Notification{Topic: topic, Payload: id}) {
					closeConn()
					return
				}
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
