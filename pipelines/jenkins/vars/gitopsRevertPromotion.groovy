// After a rollback: pushes rollback/<env>/<version>, a branch that gives deploy/environments/<env>.yml back the
// state it had before the merged promotion, so that git again says what runs once its pull request is merged (the
// drift check reports the environment until then). Does nothing when the default branch no longer names this
// build's version.
void call(String environment, Map settings) {
    withEnv(["DEPLOY_ENV=${environment}", "DEFAULT_BRANCH=${settings.defaultBranch}"]) {
        withCredentials([gitUsernamePassword(credentialsId: settings.gitCredentialsId)]) {
            sh(label: "push the revert of the promotion to ${environment} for review", script: '''
                git fetch --quiet origin "$DEFAULT_BRANCH"
                git checkout --quiet --detach FETCH_HEAD
                env_file="deploy/environments/$DEPLOY_ENV.yml"
                named="$(grep -E '^service_version:' "$env_file" | head -n 1 | cut -d: -f2- | tr -d '"[:space:]')"
                if [ "$named" != "$SERVICE_VERSION" ]; then
                    echo "$DEFAULT_BRANCH no longer names $SERVICE_VERSION for $DEPLOY_ENV: nothing to revert"
                    exit 0
                fi
                # The commit of the default branch that merged the promotion, whatever the merge method.
                promoted="$(git log --first-parent -n 1 --format=%H -- "$env_file")"
                git show "$promoted^1:$env_file" > "$env_file"
                branch="rollback/$DEPLOY_ENV/$SERVICE_VERSION"
                git checkout --quiet -B "$branch"
                git -c user.name=jenkins -c user.email=jenkins@localhost commit --quiet \
                    -m "deploy: roll $DEPLOY_ENV back from $SERVICE_VERSION [skip ci]" -- "$env_file"
                git push --force origin "HEAD:refs/heads/$branch"
                echo "Open a pull request of $branch into $DEFAULT_BRANCH: merging it makes git say what runs again."
            ''')
        }
    }
}
