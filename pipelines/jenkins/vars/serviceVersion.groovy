// The version this build produces: the Makefile's VERSION at the built commit. Read once and kept in
// env.SERVICE_VERSION, so later stages (other agents, or a workspace a promotion rebased onto a newer main) tag,
// push and promote the same value.
String call() {
    if (!env.SERVICE_VERSION) {
        env.SERVICE_VERSION = sh(label: 'make print-VERSION', returnStdout: true,
                                 script: 'make --no-print-directory print-VERSION').trim()
    }
    return env.SERVICE_VERSION
}
