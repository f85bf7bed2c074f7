// Runs one make target of the project: the only way the pipeline does work.
// Variables go to make as VAR=value arguments, each shell-quoted, so a value can never become shell code.
void call(String target, Map variables = [:]) {
    List<String> words = ['make', target] + variables.collect { name, value -> "${name}=${shellQuote(value)}" }
    sh(label: "make ${target}", script: words.join(' '))
}

private String shellQuote(Object value) {
    return "'" + String.valueOf(value).replace("'", "'\"'\"'") + "'"
}
