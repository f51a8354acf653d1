package request_test

import (
	"fmt"
	"time"

	"github.com/execmod/execmod/module/internal/request"
)

// The seed's form: the command and its arguments, passed verbatim.
func ExampleExecute() {
	lim := request.Limits{MaxTimeout: time.Hour}
	c, err := request.Execute([]byte(`{"command": "echo", "arguments": ["$PATH"], "timeout": "1.5mins"}`), lim)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("%s %q shell=%v timeout=%v form=%s\n", c.Path, c.Args, c.Shell, c.Timeout, c.Form)

	_, err = request.Execute([]byte(`{"command": "sleep", "arguments": ["10"], "timeout": 90000}`), lim)
	fmt.Println(err)
	_, err = request.Execute([]byte(`{"comand": "ls"}`), lim)
	fmt.Println(err)
	// Output:
	// echo ["echo" "$PATH"] shell=false timeout=1m30s form=execute
	// timeout: 90000 seconds is above the maximum of 1h0m0s (parameter max_timeout)
	// unknown field "comand" (known: command, arguments, shell, timeout)
}

// The Mesos CommandInfo form: "shell" defaults to true, and with shell
// false "arguments" is the whole argv, as for execlp.
func ExampleExecute_commandInfo() {
	lim := request.Limits{MaxTimeout: time.Hour, AllowShell: true}
	c, err := request.Execute([]byte(`{"value": "ls -la /tmp | wc -l",
		"environment": {"variables": [{"name": "EXECUTE_TIMEOUT_SEC", "value": "30"}, {"name": "LANG", "value": "C"}]}}`), lim)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("%s %q shell=%v env=%v timeout=%v form=%s\n", c.Path, c.Args, c.Shell, c.Env, c.Timeout, c.Form)

	c, err = request.Execute([]byte(`{"value": "/bin/ls", "shell": false, "arguments": ["ls", "-la"]}`), lim)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("%s %q shell=%v\n", c.Path, c.Args, c.Shell)

	_, err = request.Execute([]byte(`{"value": "true", "uris": [{"value": "http://example.com/x.tgz"}]}`), lim)
	fmt.Println(err)
	// Output:
	// /bin/sh ["/bin/sh" "-c" "ls -la /tmp | wc -l"] shell=true env=map[LANG:C] timeout=30s form=commandinfo
	// /bin/ls ["ls" "-la"] shell=false
	// uris: fetching URIs is not supported; put the files on the agent beforehand and leave "uris" out (or empty)
}

func ExampleTask() {
	c, err := request.Task([]byte(`{"command": "cat", "stdin": "aGVsbG8K", "env": {"LANG": "C"},
		"cwd": "/tmp", "grace": "5s", "labels": {"team": "infra"}, "idempotency_key": "req-42"}`), request.Limits{})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("%q stdin=%q env=%v cwd=%s grace=%v labels=%v key=%s\n", c.Args, c.Stdin, c.Env, c.Cwd, c.Grace, c.Labels, c.IdempotencyKey)
	// Output:
	// ["cat"] stdin="hello\n" env=map[LANG:C] cwd=/tmp grace=5s labels=map[team:infra] key=req-42
}

func ExampleParseSignal() {
	for _, s := range []string{"SIGTERM", "term", "9", "0"} {
		sig, err := request.ParseSignal(s)
		if err != nil {
			fmt.Println(err)
			continue
		}
		fmt.Println(int(sig), request.SignalName(sig))
	}
	// Output:
	// 15 SIGTERM
	// 15 SIGTERM
	// 9 SIGKILL
	// signal number "0" is out of range (want 1 to 31, or a name such as "SIGTERM")
}

func ExampleText() {
	fmt.Println(request.Text([]byte("hello")))
	fmt.Println(request.Text([]byte{0xff, 0xfe}))
	// Output:
	// hello utf-8
	// //4= base64
}
