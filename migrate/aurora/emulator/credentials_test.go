package emulator

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestPublishAndFindCredentials(t *testing.T) {
	file := filepath.Join(t.TempDir(), ".pgpass")
	if err := os.WriteFile(file, []byte("*:*:*:postgres:secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	url := "http://127.0.0.1:1"
	if _, ok := FindCredentials(url); ok {
		t.Skip("an emulator on this machine published credentials for " + url)
	}
	unpublish, err := PublishCredentials(url, file)
	if err != nil {
		t.Fatal(err)
	}
	got, ok := FindCredentials(url)
	if !ok || got != file {
		t.Errorf("FindCredentials = %q, %v; want %s", got, ok, file)
	}
	if _, ok := FindCredentials("http://127.0.0.1:2"); ok {
		t.Error("found credentials for another address")
	}
	// A file others can read is not taken.
	if err := os.Chmod(file, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, ok := FindCredentials(url); ok {
		t.Error("found a password file others can read")
	}
	unpublish()
	if _, ok := FindCredentials(url); ok {
		t.Error("found credentials after unpublish")
	}
}

func TestCredentialsLinkRefusesNonLoopback(t *testing.T) {
	for _, url := range []string{"http://10.0.0.1:8080", "https://rds.us-east-1.amazonaws.com", "not a url", "http://[::1]:9"} {
		_, err := credentialsLink(url)
		if loop := strings.Contains(url, "::1"); (err == nil) != loop {
			t.Errorf("credentialsLink(%q) = %v", url, err)
		}
	}
}
