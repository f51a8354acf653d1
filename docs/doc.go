// Package docs holds execmod's guides; its test runs tutorial.md as written.
package docs
