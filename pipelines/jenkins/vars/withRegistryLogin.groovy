// Logs the container tool in to the project's registry for the body, and out again after it.
// The registry host is read from the Makefile (make print-IMAGE), where the project writes it down once.
void call(String credentialsId, Closure body) {
    String image = sh(label: 'make print-IMAGE', returnStdout: true,
                      script: 'make --no-print-directory print-IMAGE').trim()
    String registryHost = image.tokenize('/')[0]
    withEnv(["REGISTRY_HOST=${registryHost}"]) {
        withCredentials([usernamePassword(credentialsId: credentialsId,
                usernameVariable: 'REGISTRY_USERNAME', passwordVariable: 'REGISTRY_PASSWORD')]) {
            // Single quotes: the shell, not Groovy, expands the secret, so it never lands in the build's script text.
            sh(label: 'registry login', script: '''
                printf %s "$REGISTRY_PASSWORD" |
                    docker login --username "$REGISTRY_USERNAME" --password-stdin "$REGISTRY_HOST"
            ''')
        }
        try {
            body()
        } finally {
            sh(label: 'registry logout', script: 'docker logout "$REGISTRY_HOST"')
        }
    }
}
