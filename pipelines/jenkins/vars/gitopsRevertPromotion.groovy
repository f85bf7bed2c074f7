// After a rollback: reverts the promotion commit so git again says what runs (else the drift check fires).
// Does nothing when this build made no promotion commit for the environment.
void call(String environment, Map settings) {
    withEnv(["DEPLOY_ENV=${environment}", "DEFAULT_BRANCH=${settings.defaultBranch}"]) {
        withCredentials([gitUsernamePassword(credentialsId: settings.gitCredentialsId)]) {
            sh(label: "revert the promotion to ${environment} in git", script: '''
                if [ -f ".promotion-$DEPLOY_ENV" ]; then
                    git revert --no-edit "$(cat ".promotion-$DEPLOY_ENV")"
                    git commit --amend -m "deploy: roll $DEPLOY_ENV back from $SERVICE_VERSION [skip ci]"
                    git pull --rebase origin "$DEFAULT_BRANCH"
                    git push origin "HEAD:$DEFAULT_BRANCH"
                    rm -f ".promotion-$DEPLOY_ENV"
                fi
            ''')
        }
    }
}
