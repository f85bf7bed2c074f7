// cruft check: warns, never fails. A project behind its template turns this stage unstable (yellow) and the build
// goes on: the team decides when to take the update (`cruft update`).
void call() {
    catchError(buildResult: 'SUCCESS', stageResult: 'UNSTABLE', message: 'behind its template: run cruft update') {
        sh(label: 'cruft check', script: '''
            if [ ! -f .cruft.json ]; then
                echo "no .cruft.json: this project is not linked to its template"
                exit 0
            fi
            python3 -m venv .cruft-venv
            .cruft-venv/bin/python -m pip install --quiet cruft==2.16.0
            .cruft-venv/bin/cruft check
        ''')
    }
}
