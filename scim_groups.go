// SCIM /Groups: list, search, create, read, replace, patch (membership changes) and delete.

package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/julienschmidt/httprouter"
)

// listGroups serves GET /Groups.
func (s *server) listGroups(w http.ResponseWriter, r *http.Request, _ httprouter.Params) error {
	lp, err := parseListParams(r)
	if err != nil {
		return err
	}
	return s.writeGroups(w, r, lp)
}

// searchGroups serves POST /Groups/.search.
func (s *server) searchGroups(w http.ResponseWriter, r *http.Request) error {
	lp, err := readSearch(r)
	if err != nil {
		return err
	}
	return s.writeGroups(w, r, lp)
}

// writeGroups answers a group list or search, reading members only when the projection returns them.
func (s *server) writeGroups(w http.ResponseWriter, r *http.Request, lp listParams) error {
	var err error
	filtered := lp.Filter != nil
	if lp.Filter, err = filterFor(lp.Filter, groupType); err != nil {
		return invalidFilter(err)
	}
	groups, total, err := s.store.ListGroups(r.Context(), lp.ListQuery, !lp.proj.excludes("members"))
	if err != nil {
		return err
	}
	base := baseURL(r)
	docs := make([]map[string]any, len(groups))
	for i, g := range groups {
		docs[i] = g.doc(base)
		if filtered {
			infoOf(r).listed = append(infoOf(r).listed, g.ID)
		}
	}
	writeList(w, lp, total, docs)
	return nil
}

// groupBody reads a group from a POST or PUT body: its attributes and member ids.
func groupBody(r *http.Request) (map[string]any, []string, error) {
	body, err := readObject(r)
	if err != nil {
		return nil, nil, err
	}
	attrs, err := normalizeAttrs(groupType, body)
	if err != nil {
		return nil, nil, err
	}
	if err := checkRequired(groupType, attrs); err != nil {
		return nil, nil, err
	}
	v, _ := member(body, "members")
	ids, err := memberIDs(v)
	return attrs, ids, err
}

// createGroup serves POST /Groups.
func (s *server) createGroup(w http.ResponseWriter, r *http.Request, _ httprouter.Params) error {
	attrs, ids, err := groupBody(r)
	if err != nil {
		return err
	}
	g := &Group{Attrs: attrs}
	about(r, "Group", "", stringAttr(attrs, "displayName"))
	if err := s.store.CreateGroup(r.Context(), g, ids); err != nil {
		return err
	}
	noteSkipped(r, g.SkippedMembers)
	about(r, "Group", g.ID, "")
	return s.writeGroup(w, r, http.StatusCreated, g.ID)
}

// writeGroup reads the group back and writes it as the request's projection
// wants it: with its members streamed when they are wanted whole (a group
// may have 100,000 of them), without reading them when they are not.
func (s *server) writeGroup(w http.ResponseWriter, r *http.Request, status int, id string) error {
	p, err := projectionOf(r)
	if err != nil {
		return err
	}
	if !p.excludes("members") && membersWhole(p) {
		return s.streamGroup(w, r, status, id, p)
	}
	g, err := s.store.GroupByID(r.Context(), id, !p.excludes("members"))
	if err != nil {
		return err
	}
	if status == http.StatusOK && notModified(w, r, g.Version) {
		return nil
	}
	return writeResource(w, r, status, g.doc(baseURL(r)), g.Version)
}

// membersWhole reports whether a projection takes a group's members, if at
// all, whole: it names no sub-attribute of them and no filter on them. Such
// projections change single members, and are answered from a list in memory.
func membersWhole(p projection) bool {
	for _, pp := range slices.Concat(p.include, p.exclude) {
		if strings.EqualFold(pp.Attr, "members") && (pp.URN == "" || strings.EqualFold(pp.URN, groupSchema)) &&
			(pp.Sub != "" || pp.filter != nil) {
			return false
		}
	}
	return true
}

// memberJSON is a member as Group.doc renders it, fields in the order of
// its sorted keys, so that a streamed group is byte for byte the document
// writeResource writes.
type memberJSON struct {
	Ref     string `json:"$ref,omitempty"`
	Display string `json:"display,omitempty"`
	Type    string `json:"type"`
	Value   string `json:"value"`
}

// streamGroup writes a group with all its members, read in batches from one
// snapshot and written as they come, in memory bounded by a batch. The
// document around the members is rendered first, with a random placeholder
// where they go. Everything that can be refused (the projection, the
// group's existence, If-None-Match, the first batch) is decided before the
// first byte; an error after it aborts the response (see decide).
func (s *server) streamGroup(w http.ResponseWriter, r *http.Request, status int, id string, p projection) error {
	base := baseURL(r)
	var g *Group
	var prefix, suffix []byte
	notMod := false
	var out http.ResponseWriter // once the response has begun
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	err := s.store.StreamGroup(r.Context(), id, func(got *Group) (bool, error) {
		g = got
		if status == http.StatusOK && notModified(w, r, g.Version) {
			notMod = true
			return false, nil
		}
		doc := g.doc(base)
		slot := "members:" + newID()
		doc["members"] = slot
		if err := enc.Encode(p.apply(doc)); err != nil {
			return false, err
		}
		var ok bool
		prefix, suffix, ok = bytes.Cut(buf.Bytes(), []byte(`"`+slot+`"`))
		if !ok {
			return false, fmt.Errorf("group %s: the members placeholder is missing from the rendered document", id)
		}
		prefix, suffix = append(slices.Clone(prefix), '['), append([]byte{']'}, suffix...)
		return true, nil
	}, func(batch []Member) error {
		buf.Reset()
		if out == nil {
			out = streamingResponse(w)
			setGroupHeaders(out, status, g, base)
			out.WriteHeader(status)
			buf.Write(prefix)
		} else {
			buf.WriteByte(',')
		}
		for i, m := range batch {
			if i > 0 {
				buf.WriteByte(',')
			}
			enc.Encode(memberJSON{Ref: base + "/" + m.Type + "s/" + m.ID, Display: m.Display, Type: m.Type, Value: m.ID})
			buf.Truncate(buf.Len() - 1) // Encode's newline
		}
		_, err := out.Write(buf.Bytes())
		return err
	})
	switch {
	case err != nil || notMod:
		return err
	case out == nil: // no members
		g.Members = []Member{}
		return writeResource(w, r, status, g.doc(base), g.Version)
	}
	_, err = out.Write(suffix)
	return err
}

// setGroupHeaders sets the headers writeResource sets for a group.
func setGroupHeaders(w http.ResponseWriter, status int, g *Group, base string) {
	w.Header().Set("Content-Type", scimContentType)
	w.Header().Set("ETag", etag(g.Version))
	if status == http.StatusCreated {
		w.Header().Set("Location", base+"/Groups/"+g.ID)
	}
}

// getGroup serves GET /Groups/{id}.
func (s *server) getGroup(w http.ResponseWriter, r *http.Request, ps httprouter.Params) error {
	about(r, "Group", ps.ByName("id"), "")
	return s.writeGroup(w, r, http.StatusOK, ps.ByName("id"))
}

// replaceGroup serves PUT /Groups/{id}: its members become exactly those sent.
func (s *server) replaceGroup(w http.ResponseWriter, r *http.Request, ps httprouter.Params) error {
	attrs, ids, err := groupBody(r)
	if err != nil {
		return err
	}
	about(r, "Group", ps.ByName("id"), stringAttr(attrs, "displayName"))
	g, err := s.store.UpdateGroup(r.Context(), ps.ByName("id"), func(g *Group) ([]MemberChange, error) {
		if err := ifMatch(r, g.Version); err != nil {
			return nil, err
		}
		g.Attrs = attrs
		return []MemberChange{{Kind: membersReplace, IDs: ids}}, nil
	})
	if err != nil {
		return err
	}
	noteSkipped(r, g.SkippedMembers)
	return s.writeGroup(w, r, http.StatusOK, ps.ByName("id"))
}

// patchGroup answers 204, as Entra prefers: a group's body can be large.
func (s *server) patchGroup(w http.ResponseWriter, r *http.Request, ps httprouter.Params) error {
	body, err := readBody(r)
	if err != nil {
		return err
	}
	req, err := decodePatch(body)
	if err != nil {
		return err
	}
	about(r, "Group", ps.ByName("id"), "")
	infoOf(r).op = describeGroupPatch(req.Operations)
	g, err := s.store.UpdateGroup(r.Context(), ps.ByName("id"), func(g *Group) ([]MemberChange, error) {
		about(r, "Group", g.ID, stringAttr(g.Attrs, "displayName"))
		if err := ifMatch(r, g.Version); err != nil {
			return nil, err
		}
		s.noteUnchanged(r, g.Version)
		return applyPatch(groupType, g.Attrs, req.Operations)
	})
	if err != nil {
		return err
	}
	about(r, "Group", g.ID, stringAttr(g.Attrs, "displayName"))
	s.checkUnchanged(r, g.Version)
	noteSkipped(r, g.SkippedMembers)
	w.Header().Set("ETag", etag(g.Version))
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// deleteGroup serves DELETE /Groups/{id}; its users stay.
func (s *server) deleteGroup(w http.ResponseWriter, r *http.Request, ps httprouter.Params) error {
	if g, err := s.store.GroupByID(r.Context(), ps.ByName("id"), false); err == nil {
		about(r, "Group", g.ID, stringAttr(g.Attrs, "displayName"))
	}
	err := s.store.DeleteGroup(r.Context(), ps.ByName("id"), func(v int64) error { return ifMatch(r, v) })
	if err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// noteSkipped notes member ids a group write skipped, for the request's log
// entry and its cycle.
func noteSkipped(r *http.Request, ids []string) {
	if len(ids) == 0 {
		return
	}
	ri := infoOf(r)
	ri.skippedMembers = ids
	shown := ids
	more := ""
	if len(shown) > 10 {
		shown, more = shown[:10], fmt.Sprintf(" and %d more", len(ids)-10)
	}
	ri.detail = fmt.Sprintf("skipped %d member id(s) that no user or group has: %s%s; the rest was applied",
		len(ids), strings.Join(shown, ", "), more)
}
