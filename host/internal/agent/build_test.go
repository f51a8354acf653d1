package agent

import (
	"runtime/debug"
	"testing"
)

func TestReadBuild(t *testing.T) {
	vcs := func(kv ...string) *debug.BuildInfo {
		bi := &debug.BuildInfo{}
		for i := 0; i+1 < len(kv); i += 2 {
			bi.Settings = append(bi.Settings, debug.BuildSetting{Key: kv[i], Value: kv[i+1]})
		}
		return bi
	}
	const sha = "0123456789abcdef0123456789abcdef01234567"
	stamp := Stamp{GitSHA: "feedface", GitTime: "1700000000", Modified: "false", User: "builder"}
	for _, tc := range []struct {
		name  string
		info  *debug.BuildInfo
		stamp Stamp
		want  Build
	}{
		{"vcs information wins over the stamp, the user comes from the stamp",
			vcs("vcs.revision", sha, "vcs.time", "2024-08-23T10:11:12Z", "vcs.modified", "false"), stamp,
			Build{Date: "2024-08-23 10:11:12", Time: 1724407872, User: "builder", GitSHA: sha}},
		{"a modified tree", vcs("vcs.revision", sha, "vcs.time", "2024-08-23T10:11:12Z", "vcs.modified", "true"), Stamp{},
			Build{Date: "2024-08-23 10:11:12", Time: 1724407872, GitSHA: sha + "-dirty"}},
		{"vcs without a time", vcs("vcs.revision", sha), stamp,
			Build{User: "builder", GitSHA: sha}},
		{"-buildvcs=false: the stamp", vcs("-buildvcs", "false"), stamp,
			Build{Date: "2023-11-14 22:13:20", Time: 1700000000, User: "builder", GitSHA: "feedface"}},
		{"no build information at all", nil, Stamp{GitSHA: "feedface", Modified: "true", GitTime: "soon"},
			Build{GitSHA: "feedface-dirty"}},
		{"nothing known", vcs(), Stamp{}, Build{}},
	} {
		if got := ReadBuild(tc.info, tc.stamp); got != tc.want {
			t.Errorf("%s: %+v, want %+v", tc.name, got, tc.want)
		}
	}
}
