package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestDisabledWebhookKeepsItsQueue checks at-least-once delivery across a
// disabled spell: events raised while an endpoint is disabled wait (and the
// Apps page says how many), and enabling it delivers all of them in order.
func TestDisabledWebhookKeepsItsQueue(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	ac := setUpAdmin(t, ts)
	ctx := context.Background()
	rc := &receiver{t: t, script: []int{500, 500}}
	srv := httptest.NewServer(rc)
	defer srv.Close()
	hook, err := ts.store.CreateWebhook(ctx, srv.URL, []string{"*"})
	if err != nil {
		t.Fatal(err)
	}
	rc.secret = hook.Secret
	ws := fastSender(ts.store)
	ws.maxFailures = 2

	ts.createUser(t, "before@x")
	disabled := func() bool {
		hooks, err := ts.store.Webhooks(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return hooks[0].DisabledReason != ""
	}
	for i := 0; i < 40 && !disabled(); i++ {
		ws.deliverDue(ctx)
		time.Sleep(25 * time.Millisecond)
	}
	if !disabled() {
		t.Fatal("the endpoint was not disabled after 2 failures")
	}

	// While disabled: more changes, nothing sent.
	var want []string
	want = append(want, evUserCreated)
	for _, name := range []string{"during1@x", "during2@x", "during3@x"} {
		ts.createUser(t, name)
		want = append(want, evUserCreated)
	}
	gone := ts.createUser(t, "during4@x")
	if status, _, _ := ts.do(t, "DELETE", "/Users/"+gone, nil); status != http.StatusNoContent {
		t.Fatalf("delete: %d", status)
	}
	want = append(want, evUserCreated, evUserDeleted)
	ws.deliverDue(ctx)
	if got := rc.received(); len(got) != 0 {
		t.Fatalf("delivered %v to a disabled endpoint", got)
	}
	waiting, err := ts.store.WaitingDeliveries(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := waiting[hook.ID]; got != len(want) {
		t.Errorf("%d events waiting, want %d", got, len(want))
	}
	if _, _, page := ac.get(t, "/apps"); !strings.Contains(page, "6 events waiting") {
		t.Errorf("the Apps page does not say that 6 events wait")
	}

	if err := ts.store.EnableWebhook(ctx, hook.ID); err != nil {
		t.Fatal(err)
	}
	drain(t, ws, rc, len(want))
	if got := rc.received(); !slices.Equal(got, want) {
		t.Errorf("after enabling: received %v, want %v in order", got, want)
	}
	if _, _, page := ac.get(t, "/apps"); strings.Contains(page, "waiting") {
		t.Errorf("the Apps page still shows events waiting after delivery")
	}
}
