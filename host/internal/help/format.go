package help

import "strings"

// The AUTHENTICATION(required) texts of libprocess's help.hpp.
const (
	authRequiredText    = "This endpoint requires authentication iff HTTP authentication is\nenabled.\n"
	authNotRequiredText = "This endpoint does not require authentication.\n"
)

// Format renders a route's help text as libprocess's
//
//	HELP(TLDR(tldr), DESCRIPTION(lines...), AUTHENTICATION(authRequired))
//
// does, where lines is description split on "\n". An empty description is
// DESCRIPTION() with no lines, which libprocess renders as a lone "\n". The
// result is what Endpoint.Text holds; Handler prefixes it with the route's
// USAGE block.
func Format(tldr, description string, authRequired bool) string {
	auth := authNotRequiredText
	if authRequired {
		auth = authRequiredText
	}
	return helpText(tldrText(tldr), descriptionText(description), auth)
}

// tldrText is libprocess's TLDR(t).
func tldrText(t string) string { return t + "\n" }

// descriptionText is libprocess's DESCRIPTION(lines...), which is
// strings::join("\n", lines..., "\n"): every line followed by "\n", then
// one more "\n". With no lines the join has the single element "\n".
func descriptionText(description string) string {
	if description == "" {
		return "\n"
	}
	// join("\n", split(d, "\n")..., "\n") == d + "\n" + "\n".
	return description + "\n\n"
}

// helpText is libprocess's HELP(tldr, description, authentication) with no
// authorization and no references.
func helpText(tldr, description, authentication string) string {
	var b strings.Builder
	b.WriteString("### TL;DR; ###\n")
	b.WriteString(tldr)
	if !strings.HasSuffix(b.String(), "\n") {
		b.WriteString("\n")
	}
	b.WriteString("\n### DESCRIPTION ###\n")
	b.WriteString(description)
	b.WriteString("\n### AUTHENTICATION ###\n")
	b.WriteString(authentication)
	if !strings.HasSuffix(b.String(), "\n") {
		b.WriteString("\n")
	}
	return b.String()
}

// usage is libprocess's USAGE(u).
func usage(u string) string { return ">        " + u + "\n" }

// usagePath is libprocess's Help::getUsagePath: the id followed by the
// route name with one trailing "/" removed.
func usagePath(id, name string) string { return id + strings.TrimSuffix(name, "/") }

// storedPage is what libprocess's Help::add stores for route name of
// process id: the USAGE block (with the unprefixed path first when id is
// the delegate) followed by text, or a "No help page" line when the route
// has no help.
func storedPage(id, name, text string, delegate bool) string {
	path := "/" + usagePath(id, name)
	if text == "" {
		return "## No help page for `" + path + "`\n"
	}
	var b strings.Builder
	b.WriteString("### USAGE ###\n")
	if delegate {
		b.WriteString(usage(usagePath("", name)))
	}
	b.WriteString(usage(path))
	b.WriteString("\n")
	b.WriteString(text)
	return b.String()
}
