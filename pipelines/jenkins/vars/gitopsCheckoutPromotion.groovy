// Before a deploy: the workspace takes what the default branch says now, and that must be this build's promotion
// (the version and the build number it recorded), merged by a person. Anything else stops the deploy.
void call(String environment, Map settings) {
    withEnv(["DEPLOY_ENV=${environment}", "DEFAULT_BRANCH=${settings.defaultBranch}"]) {
        withCredentials([gitUsernamePassword(credentialsId: settings.gitCredentialsId)]) {
            sh(label: "check out the promotion of ${environment} merged into the default branch", script: '''
                git fetch --quiet origin "$DEFAULT_BRANCH"
                git checkout --quiet --detach FETCH_HEAD
                env_file="deploy/environments/$DEPLOY_ENV.yml"
                field() { grep -E "^$1:" "$env_file" | head -n 1 | cut -d: -f2- | tr -d '"[:space:]'; }
                version="$(field service_version)"
                run="$(field artifact_run)"
                if [ "$version" != "$SERVICE_VERSION" ] || [ "$run" != "$BUILD_NUMBER" ]; then
                    echo "$DEFAULT_BRANCH names $version of build $run in $env_file, not $SERVICE_VERSION" \
                        "of build $BUILD_NUMBER: merge promote/$DEPLOY_ENV/$SERVICE_VERSION first" >&2
                    exit 1
                fi
            ''')
        }
    }
}
