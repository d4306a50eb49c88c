package transfer

import "testing"

func TestFolderLevel(t *testing.T) {
	tests := []struct{ name, level string }{
		{"Sent", "Sent"},
		{"Entwürfe", "Entw&APw-rfe"},
		{"v1.2", "v1&AC4-2"},
		{"a&b", "a&-b"},
		{"ü.ü", "&APw-&AC4-&APw-"},
	}
	for _, tc := range tests {
		if got := folderLevel(tc.name); got != tc.level {
			t.Errorf("folderLevel(%q) = %q, want %q", tc.name, got, tc.level)
		}
		if got := folderLevelName(tc.level); got != tc.name {
			t.Errorf("folderLevelName(%q) = %q, want %q", tc.level, got, tc.name)
		}
	}
	// Not modified UTF-7: taken as it is.
	if got := folderLevelName("a&b"); got != "a&b" {
		t.Errorf("folderLevelName(a&b) = %q", got)
	}
}
