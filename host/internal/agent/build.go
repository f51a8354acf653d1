package agent

import (
	"runtime/debug"
	"strconv"
	"time"
)

// Build is how the host binary was built, as /version, /state and
// GET_VERSION report it (Mesos's build_date, build_time, build_user and
// git_sha).
type Build struct {
	Date   string  // build_date: Time as "2006-01-02 15:04:05", UTC; "" when unknown
	Time   float64 // build_time: seconds since the epoch; 0 when unknown
	User   string  // build_user; "" when unknown
	GitSHA string  // git_sha: the commit, with "-dirty" when its tree had changes; "" when unknown
}

// Stamp is what a build may set with -ldflags -X for when the go
// command embeds no VCS information (GOFLAGS=-buildvcs=false, or no
// .git): the Makefile's build target sets them from git rev-parse HEAD,
// git log -1 --format=%ct, git status and id -un. Empty fields are
// unknown.
type Stamp struct {
	GitSHA   string // the commit
	GitTime  string // the commit's time, seconds since the epoch
	Modified string // "true" when the tree had uncommitted changes
	User     string // who built it
}

// ReadBuild returns the build of the binary from info, the go command's
// own record of it (runtime/debug.ReadBuildInfo; nil when there is
// none): vcs.revision, vcs.time and vcs.modified. When info has no
// revision, the commit, its time and the modified flag come from stamp
// instead; the user always does (the go command does not record one).
//
// The time reported is the commit's, not the moment of linking, so that
// two builds of one commit report the same build_time (reproducible
// builds); Mesos reports the time its build ran.
func ReadBuild(info *debug.BuildInfo, stamp Stamp) Build {
	sha, when, modified := stamp.GitSHA, stamp.GitTime, stamp.Modified == "true"
	if info != nil {
		vcs := map[string]string{}
		for _, s := range info.Settings {
			vcs[s.Key] = s.Value
		}
		if rev := vcs["vcs.revision"]; rev != "" {
			sha, modified, when = rev, vcs["vcs.modified"] == "true", ""
			if t, err := time.Parse(time.RFC3339, vcs["vcs.time"]); err == nil {
				when = strconv.FormatInt(t.Unix(), 10)
			}
		}
	}
	b := Build{GitSHA: sha, User: stamp.User}
	if sha != "" && modified {
		b.GitSHA += "-dirty"
	}
	if secs, err := strconv.ParseInt(when, 10, 64); err == nil && secs > 0 {
		b.Time = float64(secs)
		b.Date = time.Unix(secs, 0).UTC().Format(time.DateTime)
	}
	return b
}
