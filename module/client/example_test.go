package client_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"time"

	"github.com/execmod/execmod/module/client"
)

// In these examples agent is the address of a running modhost that loads
// the remote-execute module, such as "127.0.0.1:5051".

// Run a command on the agent and read its outcome.
func Example() {
	c, err := client.New(agent)
	if err != nil {
		log.Fatal(err)
	}
	t, err := c.Run(context.Background(), client.RunRequest{Command: "echo", Args: []string{"hello", "world"}})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s: exit %d, stdout %q\n", t.State, t.Result.ExitCode, t.Stdout.Text)
	// Output: exited: exit 0, stdout "hello world\n"
}

// Run sends standard input, environment and a timeout; a shell command is
// one line for /bin/sh -c.
func ExampleClient_Run() {
	c, err := client.New(agent)
	if err != nil {
		log.Fatal(err)
	}
	t, err := c.Run(context.Background(), client.RunRequest{
		Command: `tr a-z A-Z; echo "$GREETING" >&2; exit 3`, Shell: true,
		Stdin:   []byte("quiet please\n"),
		Env:     map[string]string{"GREETING": "hi"},
		Timeout: 10 * time.Second,
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("exit %d\nstdout %q\nstderr %q\n", t.Result.ExitCode, t.Stdout.Text, t.Stderr.Text)
	// Output:
	// exit 3
	// stdout "QUIET PLEASE\n"
	// stderr "hi\n"
}

// Start returns at once; Output follows the live stream until the task
// ends, and Wait returns its outcome.
func ExampleClient_Start() {
	ctx := context.Background()
	c, err := client.New(agent)
	if err != nil {
		log.Fatal(err)
	}
	t, err := c.Start(ctx, client.RunRequest{Command: "for i in 1 2 3; do echo line $i; done", Shell: true})
	if err != nil {
		log.Fatal(err)
	}
	out, err := c.Output(ctx, t.ID, "stdout", 0, true)
	if err != nil {
		log.Fatal(err)
	}
	defer out.Close()
	b, err := io.ReadAll(out)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Print(string(b))
	if t, err = c.Wait(ctx, t.ID); err != nil {
		log.Fatal(err)
	}
	fmt.Println(t.State, t.Result.ExitCode)
	// Output:
	// line 1
	// line 2
	// line 3
	// exited 0
}

// List finds tasks by label, page by page; All walks every page.
func ExampleClient_List() {
	ctx := context.Background()
	c, err := client.New(agent)
	if err != nil {
		log.Fatal(err)
	}
	for _, n := range []string{"1", "2", "3"} {
		if _, err := c.Run(ctx, client.RunRequest{Command: "true", Labels: map[string]string{"job": "example-list", "n": n}}); err != nil {
			log.Fatal(err)
		}
	}
	tasks, next, err := c.List(ctx, client.ListOptions{Labels: map[string]string{"job": "example-list"}, Limit: 2})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(len(tasks), "on the first page, more:", next != "")
	for t, err := range c.All(ctx, client.ListOptions{Labels: map[string]string{"job": "example-list"}, Limit: 2}) {
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(t.Labels["n"], t.State)
	}
	// Output:
	// 2 on the first page, more: true
	// 1 exited
	// 2 exited
	// 3 exited
}

// The seed API, as Mesos's execute module has it: run, then ask by pid.
func ExampleClient_Execute() {
	ctx := context.Background()
	c, err := client.New(agent)
	if err != nil {
		log.Fatal(err)
	}
	pid, id, err := c.Execute(ctx, "echo seeded", nil, true, 30*time.Second)
	if err != nil {
		log.Fatal(err)
	}
	if _, err := c.Wait(ctx, id); err != nil {
		log.Fatal(err)
	}
	r, err := c.TaskByPid(ctx, pid)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("pending %v, exit %d, stdout %q\n", r.Pending, r.ExitCode, r.Stdout)
	// Output: pending false, exit 0, stdout "seeded\n"
}

// Without --acls everything is allowed; with them, PolicyCheck tells in
// advance, naming the rules, and a refused Start is a 403 with the rule.
func ExampleClient_PolicyCheck() {
	c, err := client.New(agent)
	if err != nil {
		log.Fatal(err)
	}
	d, err := c.PolicyCheck(context.Background(), client.RunRequest{Command: "ls", Args: []string{"/"}})
	if err != nil {
		log.Fatal(err)
	}
	checks, err := d.CheckList()
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(d.Allowed, checks[0].Action, checks[0].Object)
	// Output: true run_remote_commands ls /
}

// Every answer that is not a 2xx is an *Error; errors.Is tells the
// common ones apart.
func ExampleError() {
	c, err := client.New(agent)
	if err != nil {
		log.Fatal(err)
	}
	_, err = c.Get(context.Background(), "01h2x3y4z5a6b7c8d9e0f1g2h3")
	switch {
	case errors.Is(err, client.ErrNotFound):
		fmt.Println("no such task")
	case errors.Is(err, client.ErrForbidden), errors.Is(err, client.ErrUnauthorized):
		fmt.Println("not allowed")
	case errors.Is(err, client.ErrUnreachable):
		fmt.Println("the agent is down")
	}
	var e *client.Error
	if errors.As(err, &e) {
		fmt.Println(e.StatusCode, e.Message) // and e.Rule for an ACL denial
	}
	// Output:
	// no such task
	// 404 no such task "01h2x3y4z5a6b7c8d9e0f1g2h3"
}

// Over HTTPS with a client certificate (the host's --ssl_ca_file), and
// basic credentials (--http_credentials).
func ExampleNew() {
	c, err := client.New("agent.example:5051",
		client.WithTLS("/etc/execmod/ca.pem", "/etc/execmod/ops.pem", "/etc/execmod/ops-key.pem"),
		client.WithBasicAuth("ops", "secret"))
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(c.Agent())
}
