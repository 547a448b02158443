// The Groups pages: list with member counts and a group's members.

package main

import (
	"net/http"
	"time"

	"github.com/julienschmidt/httprouter"
)

// groupRow is a row of the Groups list.
type groupRow struct {
	ID, Name, ExternalID string
	Members              int
	Modified             time.Time
}

// groupsData is the data of web/groups.html.
type groupsData struct {
	layout
	Rows  []groupRow
	Pager pager
}

// groups serves GET /groups, searchable by name and paged.
func (a *admin) groups(w http.ResponseWriter, r *http.Request, _ httprouter.Params, sess *adminSession) error {
	lq := ListQuery{Filter: searchFilter(r.URL.Query().Get("q"), "displayName"), SortBy: "displayName",
		StartIndex: (pageNumber(r)-1)*adminPageSize + 1, Count: adminPageSize}
	groups, total, err := a.store.ListGroups(r.Context(), lq, false)
	if err != nil {
		return err
	}
	ids := make([]string, len(groups))
	for i, g := range groups {
		ids[i] = g.ID
	}
	counts, err := a.store.GroupMemberCounts(r.Context(), ids)
	if err != nil {
		return err
	}
	d := groupsData{layout: a.layout(r, sess, "Groups", "groups"), Pager: newPager(r, total)}
	for _, g := range groups {
		d.Rows = append(d.Rows, groupRow{ID: g.ID, Name: stringAttr(g.Attrs, "displayName"),
			ExternalID: stringAttr(g.Attrs, "externalId"), Members: counts[g.ID], Modified: g.Modified})
	}
	return a.render(w, r, http.StatusOK, "groups.html", d)
}

// groupData is the data of web/group.html.
type groupData struct {
	layout
	Group   *Group
	Name    string
	Attrs   []attrRow
	Members []Member
	Pager   pager
	History []logRow
	Skipped []SkippedMember
}

// group serves GET /groups/:id: its attributes, members (sorted by name) and skipped member ids.
func (a *admin) group(w http.ResponseWriter, r *http.Request, ps httprouter.Params, sess *adminSession) error {
	ctx := r.Context()
	g, err := a.store.GroupByID(ctx, ps.ByName("id"), false)
	if err != nil {
		return err
	}
	members, total, err := a.store.GroupMembersPage(ctx, g.ID, (pageNumber(r)-1)*adminPageSize, adminPageSize)
	if err != nil {
		return err
	}
	entries, err := a.store.ListLog(ctx, LogQuery{ResourceID: g.ID, Limit: 50})
	if err != nil {
		return err
	}
	history, err := a.logRows(ctx, entries)
	if err != nil {
		return err
	}
	skipped, err := a.store.SkippedMembers(ctx, g.ID, adminPageSize)
	if err != nil {
		return err
	}
	d := groupData{layout: a.layout(r, sess, stringAttr(g.Attrs, "displayName"), "groups"), Group: g,
		Name: stringAttr(g.Attrs, "displayName"), Members: members, Pager: newPager(r, total), History: history, Skipped: skipped}
	flatten("", groupType.visible(g.Attrs), &d.Attrs)
	return a.render(w, r, http.StatusOK, "group.html", d)
}
