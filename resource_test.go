package main

import (
	"encoding/json"
	"reflect"
	"testing"
)

// FuzzNormalizeAttrs feeds arbitrary POST/PUT bodies through decoding and
// normalization: never a panic, and normalizing a normalized resource changes nothing.
func FuzzNormalizeAttrs(f *testing.F) {
	for _, seed := range []string{
		`{"userName":"a","active":"True","emails":[{"value":"a@x","type":"work","Primary":"true"}]}`,
		`{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"b","name":{"givenName":"B"},"addresses":null}`,
		`{"userName":"c","urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"manager":"m1","department":"R"}}`,
		`{"userName":"d","urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber":"7","urn:custom:2.0:User:shoe":"42"}`,
		`{"userName":"e","manager":[{"$ref":"x","value":"m"}],"roles":[],"phoneNumbers":"+1"}`,
		`{"displayName":"g","members":[{"value":"u1","$ref":null}],"externalId":"x"}`,
		`{"userName":1}`, `[]`, `{"a":{"b":{"c":[1,2,{"d":null}]}}}`, `{"userName":"x","emails":[[]]}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var obj map[string]any
		if decodeJSON(body, &obj) != nil || obj == nil {
			return
		}
		for _, rt := range []*resourceType{userType, groupType} {
			attrs, err := normalizeAttrs(rt, obj)
			if err != nil {
				continue
			}
			raw, err := json.Marshal(attrs)
			if err != nil {
				t.Fatalf("normalized attributes do not encode: %v", err)
			}
			var again map[string]any
			if err := decodeJSON(raw, &again); err != nil {
				t.Fatalf("normalized attributes do not decode: %v", err)
			}
			second, err := normalizeAttrs(rt, again)
			if err != nil {
				t.Fatalf("normalizing a normalized %s fails: %v\n%s", rt.Name, err, raw)
			}
			if !reflect.DeepEqual(second, again) {
				t.Fatalf("normalization is not idempotent for %s:\n%v\n%v", rt.Name, again, second)
			}
		}
	})
}
