// GitOps by a branch for review: commits what `make promote` wrote into deploy/environments/<env>.yml, with this
// build's number as the run that holds the wheel, on the branch promote/<env>/<version>, and pushes that branch
// (never main). A person opens and merges its pull request; the build waits for that (an input) and then deploys.
// [skip ci]: neither the branch nor its merge into main starts a build of its own: this build deploys it.
void call(String environment, Map settings) {
    withEnv(["DEPLOY_ENV=${environment}", "DEFAULT_BRANCH=${settings.defaultBranch}"]) {
        withCredentials([gitUsernamePassword(credentialsId: settings.gitCredentialsId)]) {
            sh(label: "push the promotion to ${environment} for review", script: '''
                env_file="deploy/environments/$DEPLOY_ENV.yml"
                branch="promote/$DEPLOY_ENV/$SERVICE_VERSION"
                if ! grep -q '^artifact_run:' "$env_file"; then
                    echo "$env_file has no artifact_run line: add one (artifact_run: with an empty string)" >&2
                    exit 1
                fi
                q='"'
                sed -i -E "s/^artifact_run:.*/artifact_run: ${q}${BUILD_NUMBER}${q}/" "$env_file"
                if git diff --quiet -- "$env_file"; then
                    echo "$env_file already names $SERVICE_VERSION of build $BUILD_NUMBER"
                    exit 0
                fi
                git checkout --quiet -B "$branch"
                git -c user.name=jenkins -c user.email=jenkins@localhost commit --quiet \
                    -m "deploy: promote $SERVICE_VERSION to $DEPLOY_ENV [skip ci]" -- "$env_file"
                git push --force origin "HEAD:refs/heads/$branch"
                echo "Open a pull request of $branch into $DEFAULT_BRANCH: merging it promotes $SERVICE_VERSION."
            ''')
        }
    }
}
