// GitOps: commits the version `make promote` wrote into deploy/environments/<env>.yml and pushes it to the
// default branch, so git says what the environment is about to run. [skip ci] keeps the commit from building.
void call(String environment, Map settings) {
    withEnv(["DEPLOY_ENV=${environment}", "DEFAULT_BRANCH=${settings.defaultBranch}"]) {
        withCredentials([gitUsernamePassword(credentialsId: settings.gitCredentialsId)]) {
            sh(label: "record the promotion to ${environment} in git", script: '''
                git config user.name "jenkins"
                git config user.email "jenkins@localhost"
                git add "deploy/environments/$DEPLOY_ENV.yml"
                if git diff --cached --quiet; then
                    echo "deploy/environments/$DEPLOY_ENV.yml already says this version"
                else
                    git commit -m "deploy: promote $SERVICE_VERSION to $DEPLOY_ENV [skip ci]"
                    git pull --rebase origin "$DEFAULT_BRANCH"
                    git push origin "HEAD:$DEFAULT_BRANCH"
                    git rev-parse HEAD > ".promotion-$DEPLOY_ENV"
                fi
            ''')
        }
    }
}
